// Package pagedriver drives fer serve's web page in headless Chromium
// (chromedp): it uploads images through the page's file input and reads
// back the predicted emotions the page shows, optionally saving a
// screenshot. The browser test and `make demo`'s screenshot use it.
package pagedriver

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/chromedp/chromedp"
)

// Chromium returns the path of a Chromium or Chrome binary, or "" when
// none is installed.
func Chromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Options say how to view the page.
type Options struct {
	// Browser is the Chromium binary (default Chromium()).
	Browser string
	// Width and Height are the window size in CSS pixels (default 390 x 844,
	// a phone).
	Width, Height int
	// Screenshot, when set, is a PNG file for a screenshot of the whole page
	// once every prediction is shown.
	Screenshot string
	// Timeout bounds the whole visit (default 60 s).
	Timeout time.Duration
}

// Result is what the page showed.
type Result struct {
	// Model is the model line of the page.
	Model string
	// Emotions are the predicted emotions in the order the files were given.
	Emotions []string
	// ScrollWidth is the page's width in CSS pixels (more than the window
	// means horizontal scrolling).
	ScrollWidth int
}

// Upload opens url, chooses files with the page's file input and waits
// until the page shows an emotion for each.
func Upload(ctx context.Context, url string, files []string, opt Options) (*Result, error) {
	if opt.Browser == "" {
		opt.Browser = Chromium()
	}
	// The browser reads the files itself, from its own working folder:
	// give it absolute paths.
	abs := make([]string, len(files))
	for i, f := range files {
		p, err := filepath.Abs(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		abs[i] = p
	}
	files = abs
	if opt.Browser == "" {
		return nil, fmt.Errorf("no Chromium found (on Debian: apt-get install chromium)")
	}
	if opt.Width == 0 {
		opt.Width, opt.Height = 390, 844
	}
	if opt.Timeout == 0 {
		opt.Timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, opt.Timeout)
	defer cancel()
	allocOpts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(opt.Browser),
		chromedp.NoSandbox, // root in containers and CI
		chromedp.WindowSize(opt.Width, opt.Height),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, allocOpts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	res := &Result{}
	// The page adds cards newest first; with one upload of several files
	// the cards are in reverse order of the files.
	wait := fmt.Sprintf(`document.querySelectorAll('.card .emotion[data-emotion], .card .emotion.error').length >= %d`, len(files))
	every := chromedp.WithPollingInterval(50 * time.Millisecond)
	err := chromedp.Do(bctx,
		chromedp.EmulateViewport(int64(opt.Width), int64(opt.Height), chromedp.EmulateMobile),
		chromedp.Navigate(url),
		chromedp.Poll[chromedp.Void](`document.getElementById('model').textContent.startsWith('model: ')`, every),
		chromedp.SetUploadFiles(chromedp.CSS(`#file`), files),
		chromedp.Poll[chromedp.Void](wait, every),
	)
	var rev []string
	if err == nil {
		res.Model, err = chromedp.Run(bctx, chromedp.Text(chromedp.CSS(`#model`)))
	}
	if err == nil {
		rev, err = chromedp.Run(bctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('.card .emotion')).map(e => e.dataset.emotion || ('error: ' + e.textContent))`))
	}
	if err == nil {
		res.ScrollWidth, err = chromedp.Run(bctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
	}
	var shot []byte
	if err == nil && opt.Screenshot != "" {
		shot, err = chromedp.Run(bctx, chromedp.FullScreenshot(100)) // quality 100 is a PNG
	}
	if err != nil {
		return nil, fmt.Errorf("browser at %s: %w", url, err)
	}
	for i := len(rev) - 1; i >= 0; i-- {
		res.Emotions = append(res.Emotions, rev[i])
	}
	if opt.Screenshot != "" {
		if err := os.WriteFile(opt.Screenshot, shot, 0o644); err != nil {
			return nil, err
		}
	}
	return res, nil
}
