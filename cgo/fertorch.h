/*
 * fertorch.h: the C interface of libfertorch.so, a thin shim over libtorch.
 *
 * Rules of this interface:
 *  - Plain C only: opaque handles, integers, floats and strings. No C++ type
 *    crosses it.
 *  - Every function that can fail returns `char*`: NULL on success, or an
 *    error message allocated with malloc that the caller releases with
 *    fer_free_string. Results come back through out-parameters. No C++
 *    exception ever leaves the library.
 *  - A fer_tensor owns one reference to a libtorch tensor. It is released
 *    with fer_tensor_free; fer_live_tensors counts the handles not yet freed.
 *  - Thread-local libtorch state (grad mode, autocast) applies to the calling
 *    OS thread.
 */
#ifndef FERTORCH_H
#define FERTORCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fer_tensor_s* fer_tensor;

/* Element types. */
enum {
  FER_FLOAT32 = 0,
  FER_FLOAT64 = 1,
  FER_FLOAT16 = 2,
  FER_BFLOAT16 = 3,
  FER_INT64 = 4,
  FER_INT32 = 5,
  FER_UINT8 = 6,
  FER_INT8 = 7,
  FER_BOOL = 8
};

/* Device types. */
enum { FER_CPU = 0, FER_CUDA = 1 };

/* Element-wise unary operations for fer_unary. */
enum {
  FER_RELU = 0,
  FER_NEG = 1,
  FER_EXP = 2,
  FER_LOG = 3,
  FER_SQRT = 4,
  FER_ABS = 5,
  FER_SIGMOID = 6,
  FER_TANH = 7,
  FER_SQUARE = 8,
  FER_RECIPROCAL = 9
};

/* Binary operations (with broadcasting) for fer_binary / fer_binary_scalar. */
enum {
  FER_ADD = 0,
  FER_SUB = 1,
  FER_MUL = 2,
  FER_DIV = 3,
  FER_EQ = 4,
  FER_NE = 5,
  FER_LT = 6,
  FER_LE = 7,
  FER_GT = 8,
  FER_GE = 9,
  FER_MAXIMUM = 10,
  FER_MINIMUM = 11,
  FER_POW = 12,
  FER_MATMUL = 13 /* fer_binary only */
};

/* Reductions for fer_reduce. */
enum { FER_SUM = 0, FER_MEAN = 1, FER_AMAX = 2, FER_AMIN = 3, FER_ARGMAX = 4, FER_ARGMIN = 5 };

/* Loss reductions. */
enum { FER_REDUCTION_NONE = 0, FER_REDUCTION_MEAN = 1, FER_REDUCTION_SUM = 2 };

/* Parameter initialisations for fer_init. */
enum {
  FER_INIT_UNIFORM = 0,         /* U(a, b) */
  FER_INIT_NORMAL = 1,          /* N(mean=a, std=b) */
  FER_INIT_CONSTANT = 2,        /* a */
  FER_INIT_KAIMING_UNIFORM = 3, /* PyTorch's default for Linear/Conv weights: negative slope a, fan_in, leaky_relu */
  FER_INIT_KAIMING_NORMAL = 4,  /* fan_out, relu (torchvision's VGG convolutions) */
  FER_INIT_XAVIER_UNIFORM = 5   /* gain a */
};

/* ---- library, memory and runtime ------------------------------------- */

void fer_free_string(char* s);
/* Version of the libtorch the shim was compiled against, e.g. "1.13.0". */
const char* fer_torch_version(void);
/* 1 when the shim was built against a CUDA-enabled libtorch. */
int fer_built_with_cuda(void);
/* Number of fer_tensor handles created and not yet freed. */
int64_t fer_live_tensors(void);
void fer_tensor_free(fer_tensor t);

char* fer_set_num_threads(int n);
int fer_get_num_threads(void);
char* fer_manual_seed(uint64_t seed);
int fer_cuda_is_available(void);
int fer_cuda_device_count(void);
int fer_cudnn_is_available(void);
char* fer_cuda_synchronize(int device_index);
void fer_set_cudnn_benchmark(int on);
char* fer_set_deterministic(int on);
/* oneDNN (MKL-DNN) for CPU operations: whether libtorch has it, whether it
 * may use it (torch.backends.mkldnn.enabled), and switching it. */
int fer_onednn_available(void);
int fer_onednn_enabled(void);
void fer_set_onednn(int on);
/* Runs a few small convolutions forward and backward with oneDNN and with
 * libtorch's native kernels and stores the largest difference between the
 * two, relative to the native result's largest magnitude, and the index of
 * the case that had it. It leaves the oneDNN switch and the random
 * generators as they were. */
char* fer_onednn_probe(double* max_rel_diff, int* worst_case);
/* The name of probe case i ("3x3 convolution 24->16 channels"), or "". */
const char* fer_onednn_probe_case(int i);
int fer_grad_enabled(void);
void fer_set_grad_enabled(int on);
/* Autocast for a device type: enabled flag and the lower-precision dtype. */
char* fer_autocast_set(int device_type, int enabled, int dtype);
int fer_autocast_enabled(int device_type);
void fer_autocast_clear_cache(void);

/* ---- creation and metadata -------------------------------------------- */

/* A new tensor holding a copy of nbytes at data (row-major, the given dtype),
 * placed on the device. pin_memory applies to CPU tensors only. */
char* fer_from_data(const void* data, int64_t nbytes, const int64_t* shape, int ndim, int dtype,
                    int device_type, int device_index, fer_tensor* out);
/* Uninitialised tensor; pin_memory=1 allocates page-locked host memory. */
char* fer_empty(const int64_t* shape, int ndim, int dtype, int device_type, int device_index,
                int pin_memory, fer_tensor* out);
char* fer_full(const int64_t* shape, int ndim, double value, int dtype, int device_type,
               int device_index, fer_tensor* out);
/* Random tensor: normal=0 gives U[0,1), normal=1 gives N(0,1). */
char* fer_rand(const int64_t* shape, int ndim, int normal, int dtype, int device_type,
               int device_index, fer_tensor* out);
char* fer_arange(int64_t n, int dtype, int device_type, int device_index, fer_tensor* out);

int fer_dim(fer_tensor t);
/* Writes dim() sizes to shape. */
void fer_shape(fer_tensor t, int64_t* shape);
int fer_dtype(fer_tensor t);
void fer_device(fer_tensor t, int* device_type, int* device_index);
int64_t fer_numel(fer_tensor t);
int fer_is_contiguous(fer_tensor t);
int fer_is_pinned(fer_tensor t);
/* Host pointer of a contiguous CPU tensor (NULL otherwise). */
void* fer_data_ptr(fer_tensor t);
/* Copies the tensor's elements (as its dtype, row-major) into dst, which
 * holds nbytes; works from any device. */
char* fer_copy_to_host(fer_tensor t, void* dst, int64_t nbytes);
/* Overwrites the tensor's elements with nbytes from src. */
char* fer_copy_from_host(fer_tensor t, const void* src, int64_t nbytes);
char* fer_item(fer_tensor t, double* out);

/* dtype < 0 keeps the dtype, device_type < 0 keeps the device. */
char* fer_to(fer_tensor t, int dtype, int device_type, int device_index, int non_blocking,
             fer_tensor* out);
char* fer_clone(fer_tensor t, fer_tensor* out);
char* fer_detach(fer_tensor t, fer_tensor* out);
/* A new handle to the same tensor (shares storage and autograd identity). */
char* fer_share(fer_tensor t, fer_tensor* out);
/* channels_last=1 asks for NHWC memory order (4-D tensors). */
char* fer_contiguous(fer_tensor t, int channels_last, fer_tensor* out);
/* Replaces the handle's tensor by a converted copy (dtype < 0 and
 * device_type < 0 keep those), keeping requires_grad: how a module moves its
 * parameters. channels_last=1 also switches 4-D tensors to NHWC order. */
char* fer_convert_(fer_tensor t, int dtype, int device_type, int device_index, int channels_last);

/* ---- shapes and indexing ---------------------------------------------- */

char* fer_reshape(fer_tensor t, const int64_t* shape, int ndim, fer_tensor* out);
char* fer_view(fer_tensor t, const int64_t* shape, int ndim, fer_tensor* out);
char* fer_flatten(fer_tensor t, int64_t start_dim, int64_t end_dim, fer_tensor* out);
char* fer_permute(fer_tensor t, const int64_t* dims, int ndim, fer_tensor* out);
char* fer_transpose(fer_tensor t, int64_t dim0, int64_t dim1, fer_tensor* out);
char* fer_squeeze(fer_tensor t, int64_t dim, fer_tensor* out);
char* fer_unsqueeze(fer_tensor t, int64_t dim, fer_tensor* out);
char* fer_narrow(fer_tensor t, int64_t dim, int64_t start, int64_t length, fer_tensor* out);
char* fer_select(fer_tensor t, int64_t dim, int64_t index, fer_tensor* out);
char* fer_index_select(fer_tensor t, int64_t dim, fer_tensor index, fer_tensor* out);
char* fer_flip(fer_tensor t, const int64_t* dims, int ndim, fer_tensor* out);
char* fer_cat(const fer_tensor* ts, int n, int64_t dim, fer_tensor* out);
char* fer_stack(const fer_tensor* ts, int n, int64_t dim, fer_tensor* out);

/* ---- math ---------------------------------------------------------------- */

char* fer_unary(int op, fer_tensor t, fer_tensor* out);
/* In-place variant (FER_RELU only): *out is a new handle to t itself. */
char* fer_unary_(int op, fer_tensor t, fer_tensor* out);
char* fer_binary(int op, fer_tensor a, fer_tensor b, fer_tensor* out);
char* fer_binary_scalar(int op, fer_tensor a, double s, fer_tensor* out);
/* ndims=0 reduces over all dimensions (argmax/argmin: flattened index). */
char* fer_reduce(int op, fer_tensor t, const int64_t* dims, int ndims, int keepdim, fer_tensor* out);
char* fer_clamp(fer_tensor t, double lo, double hi, fer_tensor* out);
char* fer_softmax(fer_tensor t, int64_t dim, fer_tensor* out);
char* fer_log_softmax(fer_tensor t, int64_t dim, fer_tensor* out);
char* fer_topk(fer_tensor t, int64_t k, int64_t dim, int largest, fer_tensor* values,
               fer_tensor* indices);

/* ---- neural-network functions ----------------------------------------- */

/* bias may be NULL. stride, padding, dilation: 2 values each. */
char* fer_conv2d(fer_tensor input, fer_tensor weight, fer_tensor bias, const int64_t* stride,
                 const int64_t* padding, const int64_t* dilation, int64_t groups, fer_tensor* out);
char* fer_max_pool2d(fer_tensor input, const int64_t* kernel, const int64_t* stride,
                     const int64_t* padding, const int64_t* dilation, int ceil_mode, fer_tensor* out);
char* fer_adaptive_avg_pool2d(fer_tensor input, const int64_t* output_size, fer_tensor* out);
char* fer_linear(fer_tensor input, fer_tensor weight, fer_tensor bias, fer_tensor* out);
char* fer_dropout(fer_tensor input, double p, int train, fer_tensor* out);
/* Batch normalisation (F.batch_norm). weight, bias may be NULL; in training
 * mode the batch statistics are used and running_mean/running_var (which
 * may be NULL) are updated in place with momentum. */
char* fer_batch_norm(fer_tensor input, fer_tensor weight, fer_tensor bias, fer_tensor running_mean,
                     fer_tensor running_var, int training, double momentum, double eps,
                     fer_tensor* out);
/* PyTorch's F.cross_entropy on logits [N, C] and int64 targets [N]; weight
 * ([C]) may be NULL. */
char* fer_cross_entropy(fer_tensor logits, fer_tensor target, fer_tensor weight, int reduction,
                        int64_t ignore_index, double label_smoothing, fer_tensor* out);

/* ---- autograd ------------------------------------------------------------ */

char* fer_set_requires_grad(fer_tensor t, int on);
int fer_requires_grad(fer_tensor t);
int fer_is_leaf(fer_tensor t);
/* grad may be NULL (scalar output). */
char* fer_backward(fer_tensor t, fer_tensor grad, int retain_graph);
/* *out is NULL when the tensor has no gradient. */
char* fer_grad(fer_tensor t, fer_tensor* out);
/* set_to_none=1 drops the gradient, 0 zeroes it in place. */
char* fer_zero_grad(fer_tensor t, int set_to_none);

/* ---- in-place updates (outside autograd) ------------------------------ */

char* fer_copy_(fer_tensor dst, fer_tensor src);
char* fer_init(fer_tensor t, int kind, double a, double b);
/* t += alpha * other */
char* fer_add_(fer_tensor t, fer_tensor other, double alpha);
char* fer_mul_scalar_(fer_tensor t, double s);

/* ---- optimizers (PyTorch's single-tensor algorithms) ------------------- */

/* One Adam/AdamW step for one parameter using its .grad. step is the 1-based
 * step count after this update. max_exp_avg_sq non-NULL enables AMSGrad.
 * *updated is 0 when the parameter has no gradient (nothing changes). */
char* fer_adam_step(fer_tensor param, fer_tensor exp_avg, fer_tensor exp_avg_sq,
                    fer_tensor max_exp_avg_sq, int64_t step, double lr, double beta1, double beta2,
                    double eps, double weight_decay, int decoupled, int* updated);
/* One SGD step. buf is the momentum buffer or NULL before the first step;
 * with momentum != 0 and buf == NULL a new buffer is returned in *new_buf. */
char* fer_sgd_step(fer_tensor param, fer_tensor buf, double lr, double momentum, double dampening,
                   double weight_decay, int nesterov, fer_tensor* new_buf, int* updated);

/* Mixed precision: multiplies the gradients of the n parameters by inv_scale
 * in place (GradScaler.unscale_) and sets *found_inf when any gradient holds
 * an inf or NaN. Parameters without a gradient are skipped. */
char* fer_unscale_grads(const fer_tensor* params, int n, double inv_scale, int* found_inf);

/* ---- backbone operations (ResNet, MobileNetV3, EfficientNet, ConvNeXt, ViT) */

/* Activations for fer_activation. */
enum {
  FER_SILU = 0,        /* x * sigmoid(x) */
  FER_HARDSWISH = 1,   /* x * relu6(x + 3) / 6 */
  FER_HARDSIGMOID = 2, /* relu6(x + 3) / 6 */
  FER_GELU = 3,        /* x * Phi(x), the exact (erf) form */
  FER_GELU_TANH = 4    /* GELU's tanh approximation */
};
char* fer_activation(int op, fer_tensor t, fer_tensor* out);
/* F.layer_norm over the last ndim dimensions; weight and bias may be NULL. */
char* fer_layer_norm(fer_tensor input, const int64_t* normalized_shape, int ndim, fer_tensor weight,
                     fer_tensor bias, double eps, fer_tensor* out);
/* torchvision.ops.stochastic_depth: in training mode with p > 0, multiplies
 * each row (row_mode=1: one draw per sample) or the whole batch (row_mode=0)
 * by Bernoulli(1-p)/(1-p) drawn from libtorch's generator; otherwise *out is
 * a new handle to input. */
char* fer_stochastic_depth(fer_tensor input, double p, int row_mode, int train, fer_tensor* out);
/* softmax(q kᵀ / sqrt(E)) v over the last two dimensions of q [..., L, E],
 * k [..., S, E], v [..., S, Ev]: the fused kernel where libtorch has one
 * (2.0 and later), matmul and softmax otherwise. */
char* fer_scaled_dot_product_attention(fer_tensor q, fer_tensor k, fer_tensor v, fer_tensor* out);
/* 1 when fer_scaled_dot_product_attention uses libtorch's fused kernel. */
int fer_has_fused_attention(void);

/* ---- build and CUDA environment ----------------------------------------- */

/* _GLIBCXX_USE_CXX11_ABI as the shim was compiled: 1 for libstdc++'s C++11
 * ABI, 0 for the old one. It must match libtorch's. */
int fer_cxx11_abi(void);
/* The CUDA runtime and cuDNN versions libtorch was built with, as CUDA and
 * cuDNN encode them (12040 is CUDA 12.4; 90000 is cuDNN 9.0.0, 8906 cuDNN
 * 8.9.6); 0 when libtorch has no CUDA, or no cuDNN. */
int64_t fer_cuda_runtime_version(void);
int64_t fer_cudnn_version(void);

/* Results of fer_cuda_driver_probe. */
enum {
  FER_DRIVER_OK = 0,        /* the driver works and sees at least one GPU */
  FER_DRIVER_MISSING = 1,   /* libcuda.so.1 cannot be loaded */
  FER_DRIVER_ERROR = 2,     /* libcuda.so.1 loads but cannot start (cuInit fails) */
  FER_DRIVER_NO_DEVICE = 3  /* the driver starts but sees no GPU */
};
/* Asks the NVIDIA driver library itself (libcuda.so.1, opened with dlopen)
 * whether it is there, starts and sees a GPU, independently of libtorch and of
 * how the shim was built. *driver_version receives cuDriverGetVersion's value
 * (12040: the driver supports CUDA 12.4) or 0, *device_count the number of
 * GPUs the driver sees, *detail the loader's or the driver's words (free with
 * fer_free_string) or NULL. Returns a FER_DRIVER_* code. */
int fer_cuda_driver_probe(int* driver_version, int* device_count, char** detail);

#ifdef __cplusplus
}
#endif

#endif /* FERTORCH_H */
