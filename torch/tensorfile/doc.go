// Package tensorfile reads and writes files of named tensors without
// libtorch: PyTorch's .pth files (both the zip format that torch.save has
// written since PyTorch 1.6 and the older non-zip format that torchvision's
// pretrained VGG16 still uses) and safetensors files. It writes safetensors
// files and zip-format .pth state dicts that torch.load reads.
//
// Everything is held in a neutral form: a File is an ordered list of Entry
// values, each a name, an element type, a shape and the tensor's bytes
// (contiguous, row-major, little-endian). The torch package turns entries
// into tensors and back; the package itself is pure Go so that it can be
// tested and fuzzed anywhere.
//
// Weight files are data, never code. The .pth reader is the equivalent of
// torch.load(weights_only=True): it accepts only the pickle operations and
// the Python globals that a tensor state dict needs (collections.OrderedDict,
// torch._utils._rebuild_tensor, _rebuild_tensor_v2, _rebuild_parameter,
// _rebuild_parameter_with_state and the torch.*Storage types), refuses
// anything else with a ForbiddenGlobalError before any object is built, and
// checks every declared size against the real size of the file so that a
// hostile file cannot make the reader allocate memory out of proportion to
// its length.
//
// Loading is designed for large files: each storage is read once, straight
// from the file into the buffer that backs the entries (in chunks, on
// several goroutines), and tensors that are contiguous views share that
// buffer instead of being copied. A file of N bytes therefore costs about N
// bytes of memory.
package tensorfile
