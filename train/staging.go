package train

import (
	"fmt"

	"github.com/fertorch/fertorch/torch"
)

// Staging moves host batches to the training device. On CUDA the images go
// through page-locked host buffers and non-blocking copies, so a transfer
// overlaps with the compute already queued; on the CPU the batch is copied
// once into a tensor.
//
// A pinned buffer may be refilled only after the copy out of it has run.
// Buffers are used in turn, and the device is synchronised before reusing
// one unless the caller reported (with Synced) a synchronisation, such as
// reading a loss value, since that buffer's copy was queued.
type Staging struct {
	dev    torch.Device
	shape  []int64
	pinned []pinnedPair
	// queuedAt[i] is the upload count when buffer i's copy was queued;
	// syncedAt is the upload count at the last known synchronisation.
	queuedAt []int
	uploads  int
	syncedAt int
}

// pinnedPair is one page-locked buffer for a batch's images and labels.
type pinnedPair struct{ images, labels *torch.Tensor }

// stagingBuffers is how many pinned buffers rotate.
const stagingBuffers = 2

// NewStaging prepares uploads of float32 batches of the given NCHW shape.
func NewStaging(dev torch.Device, shape []int64) (*Staging, error) {
	s := &Staging{dev: dev, shape: append([]int64(nil), shape...)}
	if dev.IsCUDA() {
		for i := 0; i < stagingBuffers; i++ {
			var p pinnedPair
			var err error
			if p.images, err = torch.Empty(shape, torch.Options{Pinned: true}); err == nil {
				p.labels, err = torch.Empty(shape[:1], torch.Options{DType: torch.Int64, Pinned: true})
			}
			if err != nil {
				p.images.Free()
				s.Free()
				return nil, fmt.Errorf("pinned staging buffer: %w", err)
			}
			s.pinned = append(s.pinned, p)
			s.queuedAt = append(s.queuedAt, -1)
		}
	}
	return s, nil
}

// Synced tells the staging that the device has been synchronised (every
// copy queued so far has run).
func (s *Staging) Synced() { s.syncedAt = s.uploads }

// Upload returns the batch images [N,3,H,W] (channels-last if asked) and
// labels [N] on the device, owned by scope. A final batch smaller than the
// staging shape is allowed.
func (s *Staging) Upload(scope *torch.Scope, images []float32, labels []int64, channelsLast bool) (x, y *torch.Tensor, err error) {
	n := int64(len(labels))
	per := s.shape[1] * s.shape[2] * s.shape[3]
	if n == 0 || int64(len(images)) != n*per || n > s.shape[0] {
		return nil, nil, fmt.Errorf("upload: %d images values for %d labels do not match batch shape %v", len(images), n, s.shape)
	}
	shape := []int64{n, s.shape[1], s.shape[2], s.shape[3]}
	if s.pinned == nil {
		if x, err = scope.Own(torch.FromFloat32s(images, shape...)); err == nil {
			y, err = scope.Own(torch.FromInt64s(labels, n))
		}
		if err != nil {
			return nil, nil, err
		}
	} else if x, y, err = s.uploadPinned(scope, images, labels, shape); err != nil {
		return nil, nil, err
	}
	if channelsLast {
		if x, err = x.ChannelsLast(); err != nil {
			return nil, nil, err
		}
	}
	return x, y, nil
}

// uploadPinned fills the next pinned buffer pair and queues non-blocking
// copies of it to the device.
func (s *Staging) uploadPinned(scope *torch.Scope, images []float32, labels []int64, shape []int64) (x, y *torch.Tensor, err error) {
	i := s.uploads % len(s.pinned)
	if s.queuedAt[i] >= s.syncedAt {
		if err := torch.Synchronize(s.dev); err != nil {
			return nil, nil, err
		}
		s.Synced()
	}
	buf := s.pinned[i]
	hostImages, err := buf.images.HostFloat32s()
	if err != nil {
		return nil, nil, err
	}
	hostLabels, err := buf.labels.HostInt64s()
	if err != nil {
		return nil, nil, err
	}
	copy(hostImages, images)
	copy(hostLabels, labels)
	n := shape[0]
	srcX, err := scope.Own(buf.images.Narrow(0, 0, n))
	if err != nil {
		return nil, nil, err
	}
	srcY, err := scope.Own(buf.labels.Narrow(0, 0, n))
	if err != nil {
		return nil, nil, err
	}
	if x, err = srcX.To(s.dev, torch.Float32, true); err != nil {
		return nil, nil, err
	}
	if y, err = srcY.To(s.dev, torch.Int64, true); err != nil {
		return nil, nil, err
	}
	s.queuedAt[i] = s.uploads
	s.uploads++
	return x, y, nil
}

// Free releases the pinned buffers.
func (s *Staging) Free() {
	for _, p := range s.pinned {
		p.images.Free()
		p.labels.Free()
	}
	s.pinned = nil
}
