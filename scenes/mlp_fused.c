/* Fused ReLU MLP for the CPU: Linear, ReLU, ..., Linear (the fields' MLPs, scenes/mlp_fused.py), forward and
 * backward, a block of points at a time, so a block's activations stay in L1 between layers instead of making one
 * pass over memory per layer and per ReLU as separate torch ops do.
 *
 * Weights arrive packed by scenes/mlp_fused.py: per layer its weight transposed ([k][pad(o)], for the forward), its
 * weight as torch stores it ([pad(o)][pad(k)], for the input gradient) and its bias ([pad(o)]), zero-padded to
 * whole vectors of 16 floats. The inner loops keep PG points' accumulators of one 16-float vector in registers
 * (GCC vector extensions; the clones below compile them for AVX-512, AVX2 or plain SSE, picked at load time).
 *
 * Gradients of the weights are summed per fixed chunk of points, then the chunks in order: the same bits whatever
 * the thread count. Rounding differs from torch's (fused multiply-adds, another summation order): the tests
 * compare with a tolerance.
 */
#pragma GCC optimize("fp-contract=fast")
#include <stdint.h>
#include <string.h>

#define VEC 16       /* floats per vector */
#define BLOCK 32     /* points per block */
#define PG 8         /* points whose accumulators share a loaded weight vector */
#define MAX_WIDTH 128
#define CHUNKS 32    /* fixed partial sums of the weight gradients (not one per thread: reproducible) */

typedef float v16 __attribute__((vector_size(64), aligned(4), may_alias));
typedef int32_t i16 __attribute__((vector_size(64), aligned(4), may_alias));

#define CLONES __attribute__((target_clones("avx512f", "arch=x86-64-v3", "default")))

static inline int padded(int d) { return (d + VEC - 1) / VEC * VEC; }
static inline v16 load(const float *p) { return *(const v16 *)p; }
static inline void store(float *p, v16 v) { *(v16 *)p = v; }
static inline v16 relu(v16 v) { return (v16)((i16)v & (v >= (v16){0})); }

typedef struct {
    const float *params;
    const int64_t *offsets; /* [3 L]: per layer the transposed weight, the weight, the bias */
    const int *dims;        /* [L + 1] */
    int n_layers;
} Net;

/* Rows [start, start + count) of src (row stride `stride`, `width` columns) into a [BLOCK][padded] buffer, zeros
 * elsewhere: padded rows and columns then add nothing to any sum. */
static void load_rows(const float *src, int64_t stride, int64_t start, int count, int width, int pad, float *dst) {
    memset(dst, 0, sizeof(float) * BLOCK * pad);
    for (int p = 0; p < count; ++p) memcpy(dst + p * pad, src + (start + p) * stride, sizeof(float) * width);
}

static inline void layer_forward(const float *in, int k, int kp, const float *wt, const float *bias, int op,
                                 float *out, int apply_relu) {
    for (int c = 0; c < op; c += VEC) {
        for (int p0 = 0; p0 < BLOCK; p0 += PG) {
            v16 acc[PG];
            const v16 b = load(bias + c);
            for (int j = 0; j < PG; ++j) acc[j] = b;
            for (int i = 0; i < k; ++i) {
                const v16 w = load(wt + (int64_t)i * op + c);
                for (int j = 0; j < PG; ++j) acc[j] += in[(p0 + j) * kp + i] * w;
            }
            for (int j = 0; j < PG; ++j) store(out + (p0 + j) * op + c, apply_relu ? relu(acc[j]) : acc[j]);
        }
    }
}

/* gw[o][:] += sum_p dy[p][o] in[p][:] and gb += sum_p dy[p] over the block. */
static inline void weight_grad(const float *dy, int o_real, int op, const float *in, int kp, float *gw, float *gb) {
    for (int o0 = 0; o0 < o_real; o0 += PG) {
        for (int c = 0; c < kp; c += VEC) {
            v16 acc[PG];
            for (int j = 0; j < PG; ++j) acc[j] = load(gw + (int64_t)(o0 + j) * kp + c);
            for (int p = 0; p < BLOCK; ++p) {
                const v16 x = load(in + p * kp + c);
                for (int j = 0; j < PG; ++j) acc[j] += dy[p * op + o0 + j] * x;
            }
            for (int j = 0; j < PG; ++j) store(gw + (int64_t)(o0 + j) * kp + c, acc[j]);
        }
    }
    for (int c = 0; c < op; c += VEC) {
        v16 s = load(gb + c);
        for (int p = 0; p < BLOCK; ++p) s += load(dy + p * op + c);
        store(gb + c, s);
    }
}

/* din[p][:] = sum_o dy[p][o] w[o][:], masked where the layer's input (a ReLU's output) is not positive. */
static inline void input_grad(const float *dy, int o_real, int op, const float *w, int kp, const float *in,
                              int mask, float *din) {
    for (int c = 0; c < kp; c += VEC) {
        for (int p0 = 0; p0 < BLOCK; p0 += PG) {
            v16 acc[PG];
            for (int j = 0; j < PG; ++j) acc[j] = (v16){0};
            for (int o = 0; o < o_real; ++o) {
                const v16 w_row = load(w + (int64_t)o * kp + c);
                for (int j = 0; j < PG; ++j) acc[j] += dy[(p0 + j) * op + o] * w_row;
            }
            for (int j = 0; j < PG; ++j) {
                v16 g = acc[j];
                if (mask) g = (v16)((i16)g & (load(in + (p0 + j) * kp + c) > (v16){0}));
                store(din + (p0 + j) * kp + c, g);
            }
        }
    }
}

static int hidden_width(const Net *net) {
    int total = 0;
    for (int l = 1; l < net->n_layers; ++l) total += padded(net->dims[l]);
    return total;
}

CLONES static void forward_block(const Net *net, const float *x, int64_t start, int count, float *y,
                                 float *hidden, int hidden_stride) {
    float a[BLOCK * MAX_WIDTH] __attribute__((aligned(64))), b[BLOCK * MAX_WIDTH] __attribute__((aligned(64)));
    float *in = a, *out = b;
    load_rows(x, net->dims[0], start, count, net->dims[0], padded(net->dims[0]), in);
    int hidden_offset = 0;
    for (int l = 0; l < net->n_layers; ++l) {
        const int k = net->dims[l], o = net->dims[l + 1], last = l == net->n_layers - 1;
        layer_forward(in, k, padded(k), net->params + net->offsets[3 * l], net->params + net->offsets[3 * l + 2],
                      padded(o), out, !last);
        if (!last && hidden != NULL) {
            for (int p = 0; p < count; ++p)
                memcpy(hidden + (start + p) * hidden_stride + hidden_offset, out + p * padded(o),
                       sizeof(float) * padded(o));
            hidden_offset += padded(o);
        }
        float *t = in; in = out; out = t;
    }
    const int o = net->dims[net->n_layers];
    for (int p = 0; p < count; ++p) memcpy(y + (start + p) * o, in + p * padded(o), sizeof(float) * o);
}

/* One block's backward: the weight gradients added to `grads` (laid out as the packed params), the input's
 * gradient written to grad_x when it is not NULL. */
CLONES static void backward_block(const Net *net, const float *x, int64_t start, int count, const float *hidden,
                                  int hidden_stride, const float *grad_y, float *grad_x, float *grads) {
    float dy_buf[BLOCK * MAX_WIDTH] __attribute__((aligned(64))), din_buf[BLOCK * MAX_WIDTH] __attribute__((aligned(64)));
    float in[BLOCK * MAX_WIDTH] __attribute__((aligned(64)));
    float *dy = dy_buf, *din = din_buf;
    const int L = net->n_layers;
    load_rows(grad_y, net->dims[L], start, count, net->dims[L], padded(net->dims[L]), dy);
    int hidden_offset = hidden_stride;
    for (int l = L - 1; l >= 0; --l) {
        const int k = net->dims[l], o = net->dims[l + 1], kp = padded(k), op = padded(o);
        if (l == 0) {
            load_rows(x, k, start, count, k, kp, in);
        } else {
            hidden_offset -= kp;
            load_rows(hidden + hidden_offset, hidden_stride, start, count, kp, kp, in);
        }
        weight_grad(dy, o, op, in, kp, grads + net->offsets[3 * l + 1], grads + net->offsets[3 * l + 2]);
        if (l == 0 && grad_x == NULL) break;
        input_grad(dy, o, op, net->params + net->offsets[3 * l + 1], kp, in, l > 0, din);
        if (l == 0) {
            for (int p = 0; p < count; ++p) memcpy(grad_x + (start + p) * k, din + p * kp, sizeof(float) * k);
        }
        float *t = dy; dy = din; din = t;
    }
}

/* ---- bfloat16 variant: the same blocks with vdpbf16ps (AVX-512 BF16), two multiply-adds per lane and instruction.
 * Inputs, weights and output gradients are rounded to bfloat16 (round to nearest even) and accumulated in float32,
 * as tiny-cuda-nn's fully fused MLP runs its matrices in half precision; biases, the saved activations, the ReLU
 * masks and all sums of gradients stay float32. vdpbf16ps multiplies pairs: each 32-bit operand holds two
 * bfloat16s of consecutive k (forward, input gradient) or of consecutive points (weight gradient). */
#include <immintrin.h>
#define BF16 __attribute__((target("avx512f,avx512bw,avx512bf16")))

int mlp_bf16_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16");
}

/* dst[i] = (a[i], b[i]) rounded to bfloat16, a in the low half: rows a and b interleaved into pairs. */
BF16 static inline void pair_rows(const float *a, const float *b, int width, uint32_t *dst) {
    static const uint16_t order[32] = {0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23,
                                       8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31};
    const __m512i idx = _mm512_loadu_si512(order);
    for (int c = 0; c < width; c += VEC) {
        const __m512bh both = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(b + c), _mm512_loadu_ps(a + c));
        _mm512_storeu_si512(dst + c, _mm512_permutexvar_epi16(idx, (__m512i)both));
    }
}

/* rows x width floats to bfloat16 in place order: consecutive columns pair up (width a multiple of VEC). */
BF16 static inline void round_rows(const float *src, int rows, int width, uint16_t *dst) {
    for (int i = 0; i < rows * width; i += VEC)
        _mm256_storeu_si256((__m256i *)(dst + i), (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(src + i)));
}

BF16 static inline __m512bh bcast(const uint16_t *pair) {
    int32_t both;
    memcpy(&both, pair, sizeof both);
    return (__m512bh)_mm512_set1_epi32(both);
}

BF16 static inline void layer_forward_bf16(const uint16_t *in, int k, int kp, const uint32_t *wt, const float *bias,
                                           int op, float *out, int apply_relu) {
    for (int c = 0; c < op; c += VEC) {
        for (int p0 = 0; p0 < BLOCK; p0 += PG) {
            __m512 acc[PG];
            const __m512 b = _mm512_loadu_ps(bias + c);
            for (int j = 0; j < PG; ++j) acc[j] = b;
            for (int i = 0; i < k; i += 2) {
                const __m512bh w = (__m512bh)_mm512_loadu_si512(wt + (int64_t)(i / 2) * op + c);
                for (int j = 0; j < PG; ++j) acc[j] = _mm512_dpbf16_ps(acc[j], bcast(in + (p0 + j) * kp + i), w);
            }
            for (int j = 0; j < PG; ++j)
                _mm512_storeu_ps(out + (p0 + j) * op + c, apply_relu ? _mm512_max_ps(acc[j], _mm512_setzero_ps())
                                                                     : acc[j]);
        }
    }
}

/* gw[o][:] += sum_p dy[p][o] in[p][:], dy and in as pairs of points [BLOCK / 2][width]; gb += sum_p dy[p]. */
BF16 static inline void weight_grad_bf16(const uint32_t *dy2, const float *dy, int o_real, int op, const uint32_t *in2,
                                         int kp, float *gw, float *gb) {
    for (int o0 = 0; o0 < o_real; o0 += PG) {
        for (int c = 0; c < kp; c += VEC) {
            __m512 acc[PG];
            for (int j = 0; j < PG; ++j) acc[j] = _mm512_loadu_ps(gw + (int64_t)(o0 + j) * kp + c);
            for (int q = 0; q < BLOCK / 2; ++q) {
                const __m512bh x = (__m512bh)_mm512_loadu_si512(in2 + q * kp + c);
                for (int j = 0; j < PG; ++j)
                    acc[j] = _mm512_dpbf16_ps(acc[j], (__m512bh)_mm512_set1_epi32((int32_t)dy2[q * op + o0 + j]), x);
            }
            for (int j = 0; j < PG; ++j) _mm512_storeu_ps(gw + (int64_t)(o0 + j) * kp + c, acc[j]);
        }
    }
    for (int c = 0; c < op; c += VEC) {
        __m512 s = _mm512_loadu_ps(gb + c);
        for (int p = 0; p < BLOCK; ++p) s = _mm512_add_ps(s, _mm512_loadu_ps(dy + p * op + c));
        _mm512_storeu_ps(gb + c, s);
    }
}

/* din[p][:] = sum_o dy[p][o] w[o][:] (dy rounded, w as pairs of rows [op / 2][kp]), masked where in <= 0. */
BF16 static inline void input_grad_bf16(const uint16_t *dy, int o_real, int op, const uint32_t *w2, int kp,
                                        const float *in, int mask, float *din) {
    for (int c = 0; c < kp; c += VEC) {
        for (int p0 = 0; p0 < BLOCK; p0 += PG) {
            __m512 acc[PG];
            for (int j = 0; j < PG; ++j) acc[j] = _mm512_setzero_ps();
            for (int o = 0; o < o_real; o += 2) {
                const __m512bh w_rows = (__m512bh)_mm512_loadu_si512(w2 + (int64_t)(o / 2) * kp + c);
                for (int j = 0; j < PG; ++j) acc[j] = _mm512_dpbf16_ps(acc[j], bcast(dy + (p0 + j) * op + o), w_rows);
            }
            for (int j = 0; j < PG; ++j) {
                __m512 g = acc[j];
                if (mask) g = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(_mm512_loadu_ps(in + (p0 + j) * kp + c),
                                                                     _mm512_setzero_ps(), _CMP_GT_OQ), g);
                _mm512_storeu_ps(din + (p0 + j) * kp + c, g);
            }
        }
    }
}

/* The weights as the bfloat16 pairs the blocks read: per layer the transposed weight's rows paired ([kp / 2][op],
 * forward) and the weight's rows paired ([op / 2][kp], input gradient), each where `offsets` puts its float32 twin
 * (a pair array is at most as long: `pairs` has the params' length). */
BF16 static void pack_pairs(const Net *net, uint32_t *pairs) {
    for (int l = 0; l < net->n_layers; ++l) {
        const int kp = padded(net->dims[l]), op = padded(net->dims[l + 1]);
        const float *wt = net->params + net->offsets[3 * l], *w = net->params + net->offsets[3 * l + 1];
        for (int i = 0; i < net->dims[l]; i += 2) {
            const float *second = i + 1 < net->dims[l] ? wt + (int64_t)(i + 1) * op : NULL;
            static const float zeros[MAX_WIDTH] = {0};
            pair_rows(wt + (int64_t)i * op, second ? second : zeros, op,
                      pairs + net->offsets[3 * l] + (int64_t)(i / 2) * op);
        }
        for (int o = 0; o < op; o += 2)
            pair_rows(w + (int64_t)o * kp, w + (int64_t)(o + 1) * kp, kp,
                      pairs + net->offsets[3 * l + 1] + (int64_t)(o / 2) * kp);
    }
}

BF16 static void forward_block_bf16(const Net *net, const uint32_t *pairs, const float *x, int64_t start, int count,
                                    float *y, float *hidden, int hidden_stride) {
    float a[BLOCK * MAX_WIDTH] __attribute__((aligned(64)));
    uint16_t in[BLOCK * MAX_WIDTH] __attribute__((aligned(64)));
    load_rows(x, net->dims[0], start, count, net->dims[0], padded(net->dims[0]), a);
    round_rows(a, BLOCK, padded(net->dims[0]), in);
    int hidden_offset = 0;
    for (int l = 0; l < net->n_layers; ++l) {
        const int k = net->dims[l], o = net->dims[l + 1], last = l == net->n_layers - 1;
        layer_forward_bf16(in, k, padded(k), pairs + net->offsets[3 * l], net->params + net->offsets[3 * l + 2],
                           padded(o), a, !last);
        if (last) break;
        if (hidden != NULL) {
            for (int p = 0; p < count; ++p)
                memcpy(hidden + (start + p) * hidden_stride + hidden_offset, a + p * padded(o),
                       sizeof(float) * padded(o));
            hidden_offset += padded(o);
        }
        round_rows(a, BLOCK, padded(o), in);
    }
    const int o = net->dims[net->n_layers];
    for (int p = 0; p < count; ++p) memcpy(y + (start + p) * o, a + p * padded(o), sizeof(float) * o);
}

BF16 static void backward_block_bf16(const Net *net, const uint32_t *pairs, const float *x, int64_t start, int count,
                                     const float *hidden, int hidden_stride, const float *grad_y, float *grad_x,
                                     float *grads) {
    float dy[BLOCK * MAX_WIDTH] __attribute__((aligned(64))), in[BLOCK * MAX_WIDTH] __attribute__((aligned(64)));
    uint32_t dy2[BLOCK / 2 * MAX_WIDTH] __attribute__((aligned(64)));
    uint32_t in2[BLOCK / 2 * MAX_WIDTH] __attribute__((aligned(64)));
    uint16_t dy1[BLOCK * MAX_WIDTH] __attribute__((aligned(64)));
    const int L = net->n_layers;
    load_rows(grad_y, net->dims[L], start, count, net->dims[L], padded(net->dims[L]), dy);
    int hidden_offset = hidden_stride;
    for (int l = L - 1; l >= 0; --l) {
        const int k = net->dims[l], o = net->dims[l + 1], kp = padded(k), op = padded(o);
        if (l == 0) {
            load_rows(x, k, start, count, k, kp, in);
        } else {
            hidden_offset -= kp;
            load_rows(hidden + hidden_offset, hidden_stride, start, count, kp, kp, in);
        }
        for (int q = 0; q < BLOCK / 2; ++q) {
            pair_rows(dy + 2 * q * op, dy + (2 * q + 1) * op, op, dy2 + q * op);
            pair_rows(in + 2 * q * kp, in + (2 * q + 1) * kp, kp, in2 + q * kp);
        }
        weight_grad_bf16(dy2, dy, o, op, in2, kp, grads + net->offsets[3 * l + 1], grads + net->offsets[3 * l + 2]);
        if (l == 0 && grad_x == NULL) break;
        round_rows(dy, BLOCK, op, dy1);
        input_grad_bf16(dy1, o, op, pairs + net->offsets[3 * l + 1], kp, in, l > 0, dy);
        if (l == 0) {
            for (int p = 0; p < count; ++p) memcpy(grad_x + (start + p) * k, dy + p * kp, sizeof(float) * k);
        }
    }
}

/* grads = the sum of the CHUNKS partial gradients in scratch, in chunk order (the same bits for any thread count). */
static void sum_chunks(const float *scratch, int64_t n_params, float *grads, int threads) {
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < n_params; ++i) {
        float s = 0.0f;
        for (int c = 0; c < CHUNKS; ++c) s += scratch[c * n_params + i];
        grads[i] = s;
    }
}

/* pairs: NULL for float32, or [n_params] scratch for the bfloat16 weight pairs (mlp_bf16_supported() must hold). */
void mlp_forward(const float *x, int64_t n, const float *params, const int64_t *offsets, const int *dims,
                 int n_layers, float *y, float *hidden, uint32_t *pairs, int threads) {
    const Net net = {params, offsets, dims, n_layers};
    const int hidden_stride = hidden_width(&net);
    const int64_t blocks = (n + BLOCK - 1) / BLOCK;
    if (pairs != NULL) pack_pairs(&net, pairs);
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int64_t i = 0; i < blocks; ++i) {
        const int64_t start = i * BLOCK;
        const int count = (int)(n - start < BLOCK ? n - start : BLOCK);
        if (pairs != NULL) forward_block_bf16(&net, pairs, x, start, count, y, hidden, hidden_stride);
        else forward_block(&net, x, start, count, y, hidden, hidden_stride);
    }
}

/* scratch: [CHUNKS][n_params] floats (zeroed here); grads: [n_params], overwritten with the sum of the chunks;
 * pairs as for mlp_forward. */
void mlp_backward(const float *x, int64_t n, const float *params, const int64_t *offsets, const int *dims,
                  int n_layers, const float *hidden, const float *grad_y, float *grad_x, float *grads,
                  int64_t n_params, float *scratch, uint32_t *pairs, int threads) {
    const Net net = {params, offsets, dims, n_layers};
    const int hidden_stride = hidden_width(&net);
    const int64_t blocks = (n + BLOCK - 1) / BLOCK;
    if (pairs != NULL) pack_pairs(&net, pairs);
    memset(scratch, 0, sizeof(float) * CHUNKS * n_params);
    #pragma omp parallel for num_threads(threads) schedule(static)
    for (int c = 0; c < CHUNKS; ++c) {
        for (int64_t i = blocks * c / CHUNKS; i < blocks * (c + 1) / CHUNKS; ++i) {
            const int64_t start = i * BLOCK;
            const int count = (int)(n - start < BLOCK ? n - start : BLOCK);
            float *partial = scratch + c * n_params;
            if (pairs != NULL)
                backward_block_bf16(&net, pairs, x, start, count, hidden, hidden_stride, grad_y, grad_x, partial);
            else
                backward_block(&net, x, start, count, hidden, hidden_stride, grad_y, grad_x, partial);
        }
    }
    sum_chunks(scratch, n_params, grads, threads);
}
