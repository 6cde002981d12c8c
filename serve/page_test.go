package serve_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/fertorch/fertorch/internal/pagedriver"
	"github.com/fertorch/fertorch/serve"
)

// TestPageInBrowser loads the page in headless Chromium from a server on
// loopback at a phone's width, uploads two images through the file input
// and reads the emotions the page renders: they are the API's answers for
// the same files, the page names the model, and nothing scrolls sideways.
func TestPageInBrowser(t *testing.T) {
	browser := pagedriver.Chromium()
	if browser == "" {
		t.Skip("skipping: no Chromium installed (on Debian: apt-get install chromium; make deps installs it)")
	}
	_, ts := start(t, serve.Config{})
	files := fixture.faces[:2]
	want := make([]string, len(files))
	for i, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		a := post(t, ts.URL+"/v1/predict", "application/octet-stream", b)
		want[i] = decode[serve.PredictResponse](t, a).Predictions[0].Emotion
	}
	shot := filepath.Join(t.TempDir(), "page.png")
	res, err := pagedriver.Upload(context.Background(), ts.URL+"/", files, pagedriver.Options{Browser: browser, Width: 390, Height: 844, Screenshot: shot})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Emotions) != 2 || res.Emotions[0] != want[0] || res.Emotions[1] != want[1] {
		t.Errorf("page shows %q, the API answers %q", res.Emotions, want)
	}
	if res.Model != "model: "+fixture.model.Name() {
		t.Errorf("model line %q", res.Model)
	}
	if res.ScrollWidth > 390 {
		t.Errorf("the page is %d px wide in a 390 px window", res.ScrollWidth)
	}
	if st, err := os.Stat(shot); err != nil || st.Size() < 1000 {
		t.Errorf("screenshot: %v", err)
	}
	t.Logf("page shows %v", res.Emotions)
}
