// Package data is fertorch's input pipeline, in pure Go: it reads the
// facial_expressions legend (data/legend.csv plus an images folder) or a
// Keras-style directory layout, splits it into train/valid/test, writes that
// layout, decodes images by content (JPEG, PNG, WebP, GIF, BMP, TIFF),
// resizes them once into a uint8 cache, and serves augmented, normalized
// NCHW float32 batches from a pool of worker goroutines.
//
// Augmentation follows Keras' ImageDataGenerator (keras-preprocessing 1.1.2,
// "legacy" semantics, with the later "fixed" semantics as an option): the
// image is resized before augmentation, one affine matrix per sample combines
// rotation, shift, shear and zoom about Keras' pivot, one bilinear warp with
// scipy's strict boundary rules writes straight into the batch buffer, the
// flip is applied after the warp, and rescaling or mean/std normalization
// comes last.
//
// Randomness is derived from (seed, epoch, position in the epoch), so a run
// produces the same batches whatever the number of workers, and an epoch can
// be resumed at any step.
//
// The package never imports the torch package: a Batch is plain Go memory
// ([]float32 images and []int64 labels) that the training code turns into
// tensors.
package data
