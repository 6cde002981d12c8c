// Command pageshot uploads images to a running `fer serve` page in
// headless Chromium, prints the emotions the page shows and saves a
// screenshot (make demo uses it):
//
//	pageshot -url http://127.0.0.1:8080/ -out serve.png IMAGE...
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/fertorch/fertorch/internal/pagedriver"
)

func main() {
	url := flag.String("url", "http://127.0.0.1:8080/", "the page of a running fer serve")
	out := flag.String("out", "serve.png", "screenshot file (PNG)")
	width := flag.Int("width", 390, "window width in CSS pixels")
	height := flag.Int("height", 844, "window height in CSS pixels")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "pageshot: give at least one image")
		os.Exit(2)
	}
	res, err := pagedriver.Upload(context.Background(), *url, flag.Args(), pagedriver.Options{Width: *width, Height: *height, Screenshot: *out})
	if err != nil {
		fmt.Fprintln(os.Stderr, "pageshot:", err)
		os.Exit(1)
	}
	fmt.Printf("%s; the page shows: %s\nwrote %s\n", res.Model, strings.Join(res.Emotions, ", "), *out)
}
