package train

import (
	"fmt"
	"io"
	"time"

	"github.com/schollz/progressbar/v3"
)

// bar is a progress bar over steps that also shows images per second; it
// draws nothing when disabled (logs that are not terminals).
type bar struct {
	pb     *progressbar.ProgressBar
	start  time.Time
	images int
	text   string
}

func newBar(w io.Writer, enabled bool, total int, desc string) *bar {
	b := &bar{start: time.Now(), text: desc}
	if !enabled || total <= 0 {
		return b
	}
	b.pb = progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(),
		progressbar.OptionSetWidth(24),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionShowElapsedTimeOnFinish(),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
	)
	return b
}

// Set moves the bar to n steps done (without counting images).
func (b *bar) Set(n int) {
	if b.pb != nil {
		_ = b.pb.Set(n)
	}
}

// Add counts steps and the images they held.
func (b *bar) Add(steps, images int) {
	b.images += images
	if b.pb == nil {
		return
	}
	b.show()
	_ = b.pb.Add(steps)
}

func (b *bar) show() {
	if secs := time.Since(b.start).Seconds(); secs > 0 && b.images > 0 {
		b.pb.Describe(fmt.Sprintf("%s | %.1f img/s", b.text, float64(b.images)/secs))
	} else {
		b.pb.Describe(b.text)
	}
}

// Describe replaces the bar's text (running loss and accuracy).
func (b *bar) Describe(s string) {
	b.text = s
	if b.pb != nil {
		b.show()
	}
}

// Finish completes the bar.
func (b *bar) Finish() {
	if b.pb != nil {
		_ = b.pb.Finish()
	}
}
