// Package testkernels tells tests whether this libtorch's oneDNN computes
// wrong convolutions on this CPU, so that training runs on libtorch's
// native kernels (fer's --onednn auto), and lets a test skip itself there.
package testkernels

import (
	"testing"

	"github.com/fertorch/fertorch/torch"
)

// OneDNNWrong reports whether this libtorch's oneDNN disagrees with its
// native kernels on this CPU (torch.ProbeOneDNN, milliseconds), failing
// the test when the check itself fails. Where it does, fer's --onednn auto
// runs CPU work on the native kernels, and tests that compare with PyTorch
// should too.
func OneDNNWrong(t testing.TB) bool {
	t.Helper()
	return !probe(t).Agrees()
}

// probe runs torch.ProbeOneDNN, failing the test when it fails.
func probe(t testing.TB) torch.OneDNNProbe {
	t.Helper()
	p, err := torch.ProbeOneDNN()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// SkipOnNativeKernels skips a training-run test where this libtorch's
// oneDNN computes wrong convolutions on this CPU (Debian 13's libtorch 2.6
// on AVX-512 machines): fer's --onednn auto then keeps to libtorch's
// native kernels, several times slower, and make test-libtorch2 would take
// far longer than CI allows on 2 cores. Such a test checks fertorch's own
// bookkeeping (checkpoints, phases, averages, resume) and runs wherever
// oneDNN is right (make test's libtorch 1.13); the kernels are compared
// with PyTorch's by the parity tests either way, and the multi-rank and
// launcher tests run everywhere. takes says what the test costs there.
func SkipOnNativeKernels(t testing.TB, takes string) {
	t.Helper()
	if p := probe(t); !p.Agrees() {
		t.Skipf("oneDNN computes %s on this CPU, and this test %s on the native kernels", p.Disagreement(), takes)
	}
}
