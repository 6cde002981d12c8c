//go:build !linux

package data

import "errors"

// exchange is not available here; the caller moves the folders one at a
// time.
func exchange(a, b string) error { return errors.ErrUnsupported }
