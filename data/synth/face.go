package synth

import (
	"image"
	"math"
)

// The renderer draws a face in "face units": the face outline is an ellipse
// centred at the origin with a vertical radius of 1, u points right and v
// points down. Every shape is a signed distance (negative inside) turned
// into an anti-aliased coverage one pixel wide.

type rgb [3]float64

func (c rgb) scale(f float64) rgb { return rgb{c[0] * f, c[1] * f, c[2] * f} }

func mixRGB(a, b rgb, t float64) rgb {
	return rgb{a[0] + (b[0]-a[0])*t, a[1] + (b[1]-a[1])*t, a[2] + (b[2]-a[2])*t}
}

// mouthKind is the shape of the mouth, the strongest cue of an expression.
type mouthKind int

const (
	mouthLine      mouthKind = iota // closed lips along a curve (neutral, sadness, contempt)
	mouthOpenSmile                  // open "D": dark inside, upper teeth (happiness)
	mouthOval                       // tall open "O" (surprise)
	mouthLens                       // wide open, stretched lens (fear)
	mouthTeeth                      // bared clenched teeth (anger)
	mouthTongue                     // small opening with the tongue out (disgust)
)

// expression holds the class-dependent shape parameters.
type expression struct {
	mouth     mouthKind
	mouthW    float64 // half width
	mouthH    float64 // opening height (open kinds)
	curve     float64 // corner lift: > 0 smile, < 0 frown
	smirk     float64 // lift of one corner only
	browSlant float64 // > 0 inner ends down (anger), < 0 inner ends up (sadness, fear)
	browRaise float64 // whole brows up
	browArch  float64 // middle of the brow up
	browAsym  float64 // extra lift of the brow on the smirk side
	eyeOpen   float64 // eye height factor, 1 = relaxed
	wrinkles  bool    // nose wrinkles
	shift     float64 // sideways offset of the mouth towards the smirk side
	side      float64 // -1 or +1: which side the asymmetric features take
}

// expressionFor draws the class's parameters with per-image jitter. The
// ranges keep every class apart on at least two cues (mouth shape plus
// brows or eyes) whatever the jitter.
func expressionFor(class string, r *rng) expression {
	e := expression{
		mouthW:    r.jitter(0.27, 0.03),
		browSlant: r.jitter(0, 0.08),
		browArch:  r.jitter(0.02, 0.015),
		eyeOpen:   r.jitter(1, 0.08),
		side:      r.sign(),
	}
	switch class {
	case "neutral":
		e.mouth = mouthLine
		e.curve = r.jitter(0, 0.02)
	case "happiness":
		e.mouth = mouthOpenSmile
		e.mouthW = r.jitter(0.34, 0.03)
		e.mouthH = r.jitter(0.17, 0.03)
		e.curve = r.jitter(0.08, 0.02)
		e.browRaise = r.jitter(0.03, 0.02)
		e.eyeOpen = r.jitter(0.72, 0.07)
	case "sadness":
		e.mouth = mouthLine
		e.mouthW = r.jitter(0.25, 0.03)
		e.curve = r.jitter(-0.2, 0.03)
		e.browSlant = r.jitter(-0.75, 0.1)
		e.eyeOpen = r.jitter(0.75, 0.07)
	case "anger":
		e.mouth = mouthTeeth
		e.mouthW = r.jitter(0.28, 0.03)
		e.mouthH = r.jitter(0.10, 0.015)
		e.browSlant = r.jitter(0.65, 0.1)
		e.browRaise = r.jitter(-0.06, 0.02)
		e.browArch = 0
		e.eyeOpen = r.jitter(0.6, 0.06)
	case "surprise":
		e.mouth = mouthOval
		e.mouthW = r.jitter(0.11, 0.015)
		e.mouthH = r.jitter(0.17, 0.025)
		e.browRaise = r.jitter(0.13, 0.03)
		e.browArch = r.jitter(0.07, 0.02)
		e.eyeOpen = r.jitter(1.45, 0.1)
	case "fear":
		e.mouth = mouthLens
		e.mouthW = r.jitter(0.31, 0.03)
		e.mouthH = r.jitter(0.09, 0.015)
		e.curve = r.jitter(-0.04, 0.015)
		e.browSlant = r.jitter(-0.5, 0.1)
		e.browRaise = r.jitter(0.09, 0.025)
		e.eyeOpen = r.jitter(1.4, 0.1)
	case "disgust":
		e.mouth = mouthTongue
		e.mouthW = r.jitter(0.2, 0.02)
		e.mouthH = r.jitter(0.065, 0.01)
		e.browSlant = r.jitter(0.35, 0.08)
		e.browRaise = r.jitter(-0.04, 0.02)
		e.eyeOpen = r.jitter(0.42, 0.06)
		e.wrinkles = true
	case "contempt":
		e.mouth = mouthLine
		e.curve = r.jitter(-0.01, 0.015)
		e.smirk = r.jitter(0.22, 0.03)
		e.shift = r.jitter(0.06, 0.015)
		e.browAsym = r.jitter(0.1, 0.02)
		e.eyeOpen = r.jitter(0.9, 0.07)
	}
	return e
}

// person holds what stays the same across a subject's images.
type person struct {
	skin       rgb
	faceW      float64 // horizontal radius of the face
	eyeX, eyeY float64
	mouthY     float64
	noseLen    float64
	hair       rgb
	hairLine   float64 // v of the fringe
	hairWave   float64
	longHair   bool
	bald       bool
	iris       rgb
	browThick  float64
	lipThick   float64
	shirt      rgb
}

var (
	skinLight = rgb{236, 204, 180}
	skinDark  = rgb{92, 58, 40}
	hairTones = []rgb{{28, 22, 20}, {60, 40, 28}, {95, 62, 36}, {190, 150, 90}, {140, 65, 35}, {150, 148, 145}}
	irisTones = []rgb{{70, 45, 25}, {50, 90, 140}, {70, 110, 70}, {30, 25, 20}}
)

func newPerson(r *rng) person {
	skin := mixRGB(skinLight, skinDark, r.float())
	skin = rgb{skin[0] * r.uniform(0.95, 1.05), skin[1] * r.uniform(0.95, 1.05), skin[2] * r.uniform(0.93, 1.07)}
	return person{
		skin:      skin,
		faceW:     r.uniform(0.72, 0.84),
		eyeX:      r.uniform(0.31, 0.36),
		eyeY:      r.uniform(-0.16, -0.08),
		mouthY:    r.uniform(0.46, 0.54),
		noseLen:   r.uniform(0.26, 0.34),
		hair:      hairTones[r.intn(len(hairTones))].scale(r.uniform(0.85, 1.15)),
		hairLine:  r.uniform(-0.72, -0.55),
		hairWave:  r.uniform(0, 0.06),
		longHair:  r.chance(0.35),
		bald:      r.chance(0.1),
		iris:      irisTones[r.intn(len(irisTones))],
		browThick: r.uniform(0.07, 0.09),
		lipThick:  r.uniform(0.055, 0.07),
		shirt:     rgb{r.uniform(20, 230), r.uniform(20, 230), r.uniform(20, 230)},
	}
}

// scene holds everything that varies per image besides the expression.
type scene struct {
	size       int
	cx, cy     float64 // face centre in [-1, 1] image coordinates
	scale      float64 // face vertical radius in image half-heights
	angle      float64 // rotation in radians
	bg0, bg1   rgb
	bgDir      float64
	light      float64 // direction of the side light
	lightAmt   float64
	brightness float64
	contrast   float64
	gaze       [2]float64
	blurSigma  float64 // pixels; 0 means none
	noiseSigma float64
	gray       bool
	blobs      [3][4]float64 // background blobs: x, y, radius, shade
	noise      *rng          // the image stream, for pixel noise
}

func newScene(r *rng, size int, grayFraction float64) scene {
	s := scene{
		size:       size,
		cx:         r.uniform(-0.05, 0.05),
		cy:         r.uniform(0, 0.08),
		scale:      r.uniform(0.68, 0.78),
		angle:      r.uniform(-6, 6) * math.Pi / 180,
		bg0:        rgb{r.uniform(30, 240), r.uniform(30, 240), r.uniform(30, 240)},
		bg1:        rgb{r.uniform(30, 240), r.uniform(30, 240), r.uniform(30, 240)},
		bgDir:      r.uniform(0, 2*math.Pi),
		light:      r.uniform(0, 2*math.Pi),
		lightAmt:   r.uniform(0, 0.25),
		brightness: r.uniform(0.85, 1.1),
		contrast:   r.uniform(0.85, 1.15),
		gaze:       [2]float64{r.uniform(-0.025, 0.025), r.uniform(-0.012, 0.012)},
		noiseSigma: r.uniform(1, 7),
		gray:       r.chance(grayFraction),
	}
	if r.chance(0.5) {
		s.blurSigma = r.uniform(0.3, 0.9) * float64(size) / 80
	}
	for i := range s.blobs {
		s.blobs[i] = [4]float64{r.uniform(-1, 1), r.uniform(-1, 1), r.uniform(0.15, 0.5), r.uniform(-50, 50)}
	}
	s.noise = r
	return s
}

// coverage turns a signed distance into anti-aliased coverage for a pixel
// of size aa (in the same units).
func coverage(d, aa float64) float64 {
	return math.Max(0, math.Min(1, 0.5-d/aa))
}

// sdEllipse is an approximate signed distance to an axis-aligned ellipse.
func sdEllipse(u, v, cx, cy, rx, ry float64) float64 {
	px, py := (u-cx)/rx, (v-cy)/ry
	k0 := math.Hypot(px, py)
	k1 := math.Hypot(px/rx, py/ry)
	if k1 == 0 {
		return -math.Min(rx, ry)
	}
	return k0 * (k0 - 1) / k1
}

// sdSegment is the distance to the segment a-b minus half its thickness.
func sdSegment(u, v, ax, ay, bx, by, thick float64) float64 {
	pax, pay := u-ax, v-ay
	bax, bay := bx-ax, by-ay
	h := (pax*bax + pay*bay) / (bax*bax + bay*bay)
	h = math.Max(0, math.Min(1, h))
	return math.Hypot(pax-bax*h, pay-bay*h) - thick/2
}

// sdCurve is the distance to the stroke of the graph v = f(u) over
// [-w, w], with round ends, minus half the thickness.
func sdCurve(u, v, w, thick float64, f func(float64) float64) float64 {
	if u < -w || u > w {
		eu := math.Copysign(w, u)
		return math.Hypot(u-eu, v-f(eu)) - thick/2
	}
	const h = 1e-3
	slope := (f(u+h) - f(u-h)) / (2 * h)
	return math.Abs(v-f(u))/math.Sqrt(1+slope*slope) - thick/2
}

// sdBand is an approximate signed distance to the region between the
// graphs top(u) <= v <= bottom(u) for |u| <= w.
func sdBand(u, v, w float64, top, bottom func(float64) float64) float64 {
	return math.Max(math.Max(top(u)-v, v-bottom(u)), math.Abs(u)-w)
}

// renderFace draws one picture. It returns a colour image; the caller converts
// to grey when the scene asks for it.
func renderFace(p person, e expression, s scene) *image.RGBA {
	n := s.size
	img := image.NewRGBA(image.Rect(0, 0, n, n))
	buf := make([]rgb, n*n)
	cosA, sinA := math.Cos(s.angle), math.Sin(s.angle)
	aa := 2 / float64(n) / s.scale // one pixel in face units
	for py := range n {
		for px := range n {
			x := (float64(px)+0.5)/float64(n)*2 - 1
			y := (float64(py)+0.5)/float64(n)*2 - 1
			dx, dy := x-s.cx, y-s.cy
			u := (cosA*dx + sinA*dy) / s.scale
			v := (-sinA*dx + cosA*dy) / s.scale
			buf[py*n+px] = shade(p, e, s, x, y, u, v, aa)
		}
	}
	if s.blurSigma > 0 {
		gaussianBlur(buf, n, s.blurSigma)
	}
	r := s.noise
	for i, c := range buf {
		var o rgb
		g := r.norm() * s.noiseSigma
		for k := range 3 {
			v := (c[k]-128)*s.contrast + 128
			v = v*s.brightness + g
			if !s.gray {
				v += r.norm() * s.noiseSigma * 0.5
			}
			o[k] = math.Max(0, math.Min(255, math.Round(v)))
		}
		img.Pix[4*i], img.Pix[4*i+1], img.Pix[4*i+2], img.Pix[4*i+3] = uint8(o[0]), uint8(o[1]), uint8(o[2]), 255
	}
	return img
}

// shade returns the colour at image point (x, y), face point (u, v).
func shade(p person, e expression, s scene, x, y, u, v, aa float64) rgb {
	// Background: a gradient with a few soft blobs.
	t := 0.5 + 0.5*(x*math.Cos(s.bgDir)+y*math.Sin(s.bgDir))/math.Sqrt2
	c := mixRGB(s.bg0, s.bg1, t)
	for _, b := range s.blobs {
		d := math.Hypot(x-b[0], y-b[1]) / b[2]
		if d < 1 {
			k := (1 - d*d) * b[3]
			c = rgb{c[0] + k, c[1] + k, c[2] + k}
		}
	}
	over := func(col rgb, a float64) {
		if a > 0 {
			c = mixRGB(c, col, a)
		}
	}
	skin := p.skin
	// Shoulders and neck.
	over(p.shirt, coverage(sdEllipse(u, v, 0, 2.05, 1.7, 0.85), aa))
	over(skin.scale(0.82), coverage(math.Max(math.Abs(u)-p.faceW*0.45, 0.55-v), aa))
	// Hair behind the head.
	if !p.bald {
		back := sdEllipse(u, v, 0, -0.1, p.faceW*1.13, 1.1)
		if !p.longHair {
			back = math.Max(back, v-0.05)
		} else {
			back = math.Max(back, v-0.75)
		}
		over(p.hair, coverage(back, aa))
	}
	// Ears.
	for _, sd := range []float64{-1, 1} {
		over(skin.scale(0.9), coverage(sdEllipse(u, v, sd*p.faceW*0.97, 0.0, 0.11, 0.19), aa))
	}
	// Face, with side light and darker edges.
	fd := sdEllipse(u, v, 0, 0, p.faceW*(1-0.08*math.Max(v, 0)), 1)
	if a := coverage(fd, aa); a > 0 {
		rr := (u/p.faceW)*(u/p.faceW) + v*v
		lit := 1 + s.lightAmt*(u*math.Cos(s.light)+v*math.Sin(s.light)) - 0.12*rr*rr
		over(skin.scale(lit), a)
	}
	// Fringe.
	if !p.bald {
		line := p.hairLine + p.hairWave*math.Sin(u*9)
		over(p.hair, math.Min(coverage(fd, aa), coverage(v-line, aa)))
	}
	dark := skin.scale(0.45)
	browCol := mixRGB(p.hair.scale(0.6), dark, 0.4)
	if p.bald {
		browCol = skin.scale(0.4)
	}
	// Brows: inner end to the middle, middle to the outer end.
	for _, sd := range []float64{-1, 1} {
		by := p.eyeY - 0.2 - e.browRaise
		if sd == e.side {
			by -= e.browAsym
		}
		ix, iy := sd*(p.eyeX-0.15), by+e.browSlant*0.08
		mx, my := sd*(p.eyeX+0.01), by-e.browArch
		ox, oy := sd*(p.eyeX+0.17), by-e.browSlant*0.08+0.02
		d := math.Min(sdSegment(u, v, ix, iy, mx, my, p.browThick), sdSegment(u, v, mx, my, ox, oy, p.browThick*0.85))
		over(browCol, coverage(d, aa))
	}
	// Eyes: white, iris, pupil, outline and a heavier upper lid.
	for _, sd := range []float64{-1, 1} {
		ex, ey := sd*p.eyeX, p.eyeY
		rx, ry := 0.145, 0.075*e.eyeOpen
		de := sdEllipse(u, v, ex, ey, rx, ry)
		ae := coverage(de, aa)
		over(rgb{240, 238, 232}, ae)
		ix, iy := ex+s.gaze[0], ey+s.gaze[1]
		over(p.iris, math.Min(ae, coverage(math.Hypot(u-ix, v-iy)-0.062, aa)))
		over(rgb{10, 10, 10}, math.Min(ae, coverage(math.Hypot(u-ix, v-iy)-0.028, aa)))
		over(dark.scale(0.6), coverage(math.Abs(de)-0.012, aa))
		lid := math.Max(math.Abs(de)-0.022, v-ey+ry*0.3)
		over(dark.scale(0.5), coverage(lid, aa))
	}
	// Nose: a shaded ridge and nostrils.
	nb := p.eyeY + 0.08
	nt := nb + p.noseLen
	over(skin.scale(0.75), coverage(sdSegment(u, v, 0.03, nb, 0.06, nt-0.03, 0.025), aa))
	for _, sd := range []float64{-1, 1} {
		over(dark.scale(0.7), coverage(sdEllipse(u, v, sd*0.055, nt, 0.028, 0.016), aa))
	}
	if e.wrinkles {
		for _, sd := range []float64{-1, 1} {
			for k := range 2 {
				off := float64(k) * 0.05
				d := sdSegment(u, v, sd*(0.06+off), nb+0.02+off, sd*(0.13+off), nb+0.09+off, 0.025)
				over(skin.scale(0.6), coverage(d, aa))
			}
		}
	}
	drawMouth(p, e, u, v, aa, over)
	return c
}

func drawMouth(p person, e expression, u, v, aa float64, over func(rgb, float64)) {
	lips := rgb{p.skin[0]*0.7 + 45, p.skin[1] * 0.45, p.skin[2] * 0.45}
	inside := rgb{55, 12, 18}
	teeth := rgb{238, 234, 222}
	my, w, t := p.mouthY, e.mouthW, p.lipThick
	u -= e.shift * e.side
	sq := func(x float64) float64 { return x * x }
	switch e.mouth {
	case mouthLine:
		f := func(x float64) float64 {
			q := x / w
			y := my + e.curve*(sq(q)*-1+0.5)
			if s := q * e.side; s > 0 {
				y -= e.smirk * s * s
			}
			return y
		}
		over(lips, coverage(sdCurve(u, v, w, t, f), aa))
	case mouthOpenSmile:
		corner := my - e.curve
		top := func(x float64) float64 { return corner + 0.03*(1-sq(x/w)) }
		bottom := func(x float64) float64 { return corner + e.mouthH*(1-sq(x/w)) }
		d := sdBand(u, v, w, top, bottom)
		over(inside, coverage(d, aa))
		teethBottom := func(x float64) float64 { return top(x) + 0.055*(1-sq(x/w)) }
		over(teeth, math.Min(coverage(d, aa), coverage(sdBand(u, v, w, top, teethBottom), aa)))
		over(lips, coverage(math.Abs(d)-t*0.4, aa))
	case mouthOval:
		d := sdEllipse(u, v, 0, my, w, e.mouthH)
		over(inside, coverage(d, aa))
		over(lips, coverage(math.Abs(d)-t*0.5, aa))
	case mouthLens:
		top := func(x float64) float64 { return my - e.curve - e.mouthH*(1-sq(x/w)) }
		bottom := func(x float64) float64 { return my - e.curve + e.mouthH*(1-sq(x/w)) }
		d := sdBand(u, v, w, top, bottom)
		over(inside, coverage(d, aa))
		upper := func(x float64) float64 { return top(x) + 0.04*(1-sq(x/w)) }
		over(teeth, math.Min(coverage(d, aa), coverage(sdBand(u, v, w, top, upper), aa)))
		over(lips, coverage(math.Abs(d)-t*0.4, aa))
	case mouthTeeth:
		// A rounded rectangle (superellipse) of teeth, with the bite line.
		q := math.Pow(math.Pow(math.Abs(u/w), 4)+math.Pow(math.Abs((v-my)/e.mouthH), 4), 0.25)
		d := (q - 1) * math.Min(w, e.mouthH)
		over(teeth, coverage(d, aa))
		over(inside, math.Min(coverage(d, aa), coverage(math.Abs(v-my)-0.012, aa)))
		for k := -2; k <= 2; k++ {
			x := float64(k) * w * 0.3
			over(rgb{150, 140, 130}, math.Min(coverage(d, aa), coverage(math.Abs(u-x)-0.006, aa)))
		}
		over(lips, coverage(math.Abs(d)-t*0.45, aa))
	case mouthTongue:
		d := sdEllipse(u, v, 0, my, w, e.mouthH)
		over(inside, coverage(d, aa))
		tongue := math.Max(sdEllipse(u, v, 0.015*e.side, my+0.1, 0.11, 0.14), my-v)
		over(rgb{225, 95, 115}, coverage(tongue, aa))
		over(rgb{150, 45, 60}, math.Min(coverage(tongue, aa), coverage(math.Abs(u-0.01*e.side)-0.008, aa)))
		over(lips, coverage(math.Max(math.Abs(d)-t*0.45, my-0.02-v), aa))
		over(lips, coverage(math.Max(math.Abs(d)-t*0.45, v-my-0.02), aa))
	}
}

// gaussianBlur blurs an n x n buffer in place, separably, clamping at the
// edges.
func gaussianBlur(buf []rgb, n int, sigma float64) {
	rad := int(math.Ceil(3 * sigma))
	k := make([]float64, 2*rad+1)
	var sum float64
	for i := range k {
		x := float64(i - rad)
		k[i] = math.Exp(-x * x / (2 * sigma * sigma))
		sum += k[i]
	}
	for i := range k {
		k[i] /= sum
	}
	tmp := make([]rgb, len(buf))
	clamp := func(i int) int { return max(0, min(n-1, i)) }
	for y := range n {
		for x := range n {
			var o rgb
			for i, w := range k {
				c := buf[y*n+clamp(x+i-rad)]
				o = rgb{o[0] + w*c[0], o[1] + w*c[1], o[2] + w*c[2]}
			}
			tmp[y*n+x] = o
		}
	}
	for y := range n {
		for x := range n {
			var o rgb
			for i, w := range k {
				c := tmp[clamp(y+i-rad)*n+x]
				o = rgb{o[0] + w*c[0], o[1] + w*c[1], o[2] + w*c[2]}
			}
			buf[y*n+x] = o
		}
	}
}
