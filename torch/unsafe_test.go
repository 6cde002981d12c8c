package torch_test

import (
	"testing"

	"github.com/fertorch/fertorch/torch"
)

func TestUnsafeHandle(t *testing.T) {
	if torch.UnsafeHandle(nil) != nil || torch.UnsafeWrap(nil) != nil {
		t.Fatal("nil tensors and handles must map to nil")
	}
	x, err := torch.FromFloat32s([]float32{1, 2}, 2)
	if err != nil {
		t.Fatal(err)
	}
	if torch.UnsafeHandle(x) == nil {
		t.Fatal("a live tensor has no handle")
	}
	x.Free()
	if torch.UnsafeHandle(x) != nil {
		t.Error("a freed tensor still has a handle")
	}
	scope := torch.NewScope()
	y, err := scope.Own(torch.FromFloat32s([]float32{3}, 1))
	if err != nil {
		t.Fatal(err)
	}
	scope.Close()
	if torch.UnsafeHandle(y) != nil {
		t.Error("a tensor of a closed scope still has a handle")
	}
}
