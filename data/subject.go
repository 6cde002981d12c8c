package data

import (
	"path"
	"strings"
)

// SubjectOf derives a person's identity from an image file name: the base
// name without its extension and without a trailing picture number
// ("_0003", "12", "_2868582k"). Tiger_Woods_0003.jpg gives Tiger_Woods and
// HrithikRoshan_12.jpg gives HrithikRoshan. A name that is only a number is
// its own identity.
func SubjectOf(name string) string {
	base := path.Base(strings.ReplaceAll(name, `\`, "/"))
	if i := strings.LastIndexByte(base, '.'); i > 0 {
		base = base[:i]
	}
	s := base
	// An optional single letter after the number (2868582k).
	if n := len(s); n >= 2 && isLetter(s[n-1]) && isDigit(s[n-2]) {
		s = s[:n-1]
	}
	end := len(s)
	for end > 0 && isDigit(s[end-1]) {
		end--
	}
	if end == len(s) {
		return base
	}
	s = strings.TrimRight(s[:end], "_- .")
	if s == "" {
		return base
	}
	return s
}

func isDigit(b byte) bool  { return b >= '0' && b <= '9' }
func isLetter(b byte) bool { return (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') }
