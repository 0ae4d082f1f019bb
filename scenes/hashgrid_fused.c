/* Fused multiresolution hash encoding for the CPU: the same layout, hash and trilinear weights as
 * scenes/hashgrid.py (and tiny-cuda-nn's HashGrid), without building [P, 8, F] temporaries.
 *
 * Loops run level-major so that one level's table stays in cache while all points visit it.
 * Forward: threads split the points of a level (each writes its own output rows).
 * Backward: threads split the levels; a level's table rows belong to one thread, which adds its
 * points in order, so gradients are bit-for-bit reproducible whatever the thread count.
 * Compiled with -ffp-contract=off so no fused multiply-add changes the rounding of the reference. Two features per
 * level (every grid Vista builds) take a path of scalars instead of a loop over a stack array: the same operations
 * in the same order, so the same bits, and a 1.7x faster forward (bench/results/hashgrid-two-features.json).
 */
#include <math.h>
#include <stdint.h>

static const uint32_t PRIME_Y = 2654435761u;
static const uint32_t PRIME_Z = 805459861u;

typedef struct {
    const float *scales;     /* [L] */
    const int64_t *resolutions; /* [L] */
    const int64_t *offsets;  /* [L + 1] */
} Layout;

/* |pos| below this converts to int64 and leaves room for the corner offsets (hashgrid.py's MAX_POS). */
#define MAX_POS 0x1p62f

/* Table rows and trilinear weights of the 8 corners of the cell around x at one level. Returns 0, and touches
 * nothing, for a point with a coordinate that is NaN, infinite or too far out to convert to a cell index: such
 * a point adds nothing at this level, as in the PyTorch twin (casting it to an integer is undefined behaviour).
 * Index arithmetic is unsigned, so it wraps (as the twin's int64 arithmetic does) instead of overflowing. */
static inline int corners(const float *x, float scale, int64_t resolution, int64_t offset, int64_t size,
                          int64_t rows[8], float weights[8]) {
    float frac[3];
    int64_t cell[3];
    for (int d = 0; d < 3; ++d) {
        float pos = x[d] * scale + 0.5f;
        if (!(fabsf(pos) < MAX_POS)) return 0;
        float fl = floorf(pos);
        frac[d] = pos - fl;
        cell[d] = (int64_t)fl;
    }
    const uint64_t ures = (uint64_t)resolution, usize = (uint64_t)size;
    const int dense = ures * ures * ures <= usize;
    /* A hashed level's size is a power of two: a mask instead of a 64-bit division, 8 times per level and point
     * (the same value, as the index is unsigned). A dense level's in-range index fits 32 bits: a cheaper division. */
    const int pow2 = (usize & (usize - 1)) == 0;
    for (int c = 0; c < 8; ++c) {
        const uint64_t cx = (uint64_t)cell[0] + (uint64_t)(c & 1), cy = (uint64_t)cell[1] + (uint64_t)((c >> 1) & 1),
                       cz = (uint64_t)cell[2] + (uint64_t)((c >> 2) & 1);
        uint64_t index;
        if (dense) {
            index = cx + cy * ures + cz * ures * ures;
        } else {
            index = (uint64_t)(((uint32_t)cx) ^ ((uint32_t)cy * PRIME_Y) ^ ((uint32_t)cz * PRIME_Z));
        }
        uint64_t row;
        if (pow2) {
            row = index & (usize - 1);
        } else if ((index | usize) >> 32 == 0) {
            row = (uint32_t)index % (uint32_t)usize;
        } else {
            row = index % usize;
        }
        rows[c] = (int64_t)row + offset;
        const float wx = (c & 1) ? frac[0] : 1.0f - frac[0];
        const float wy = ((c >> 1) & 1) ? frac[1] : 1.0f - frac[1];
        const float wz = ((c >> 2) & 1) ? frac[2] : 1.0f - frac[2];
        weights[c] = wx * wy * wz;
    }
    return 1;
}

void hashgrid_forward(const float *x, int64_t n_points, const float *table, int n_features, int n_levels,
                      const float *scales, const int64_t *resolutions, const int64_t *offsets, float *out,
                      int n_threads) {
    const int64_t stride = (int64_t)n_levels * n_features;
    for (int l = 0; l < n_levels; ++l) {
        const float scale = scales[l];
        const int64_t resolution = resolutions[l], offset = offsets[l], size = offsets[l + 1] - offsets[l];
#pragma omp parallel for num_threads(n_threads) schedule(static)
        for (int64_t p = 0; p < n_points; ++p) {
            int64_t rows[8];
            float w[8];
            float *o = out + p * stride + (int64_t)l * n_features;
            if (n_features == 2) { /* every grid Vista builds: two scalars, not a loop over a stack array */
                float a0 = 0.0f, a1 = 0.0f;
                if (corners(x + 3 * p, scale, resolution, offset, size, rows, w)) {
                    for (int c = 0; c < 8; ++c) {
                        const float *entry = table + rows[c] * 2;
                        a0 += w[c] * entry[0];
                        a1 += w[c] * entry[1];
                    }
                }
                o[0] = a0;
                o[1] = a1;
                continue;
            }
            float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            if (corners(x + 3 * p, scale, resolution, offset, size, rows, w)) {
                for (int c = 0; c < 8; ++c) {
                    const float *entry = table + rows[c] * n_features;
                    for (int f = 0; f < n_features; ++f) acc[f] += w[c] * entry[f];
                }
            }
            for (int f = 0; f < n_features; ++f) o[f] = acc[f];
        }
    }
}

/* grad_table must be zero on entry; it receives d(loss)/d(table) given d(loss)/d(out). */
void hashgrid_backward(const float *x, int64_t n_points, const float *grad_out, int n_features, int n_levels,
                       const float *scales, const int64_t *resolutions, const int64_t *offsets,
                       float *grad_table, int n_threads) {
    const int64_t stride = (int64_t)n_levels * n_features;
#pragma omp parallel for num_threads(n_threads) schedule(dynamic, 1)
    for (int l = n_levels - 1; l >= 0; --l) { /* fine (slow) levels first for balance */
        const float scale = scales[l];
        const int64_t resolution = resolutions[l], offset = offsets[l], size = offsets[l + 1] - offsets[l];
        for (int64_t p = 0; p < n_points; ++p) {
            int64_t rows[8];
            float w[8];
            if (!corners(x + 3 * p, scale, resolution, offset, size, rows, w)) continue;
            const float *g = grad_out + p * stride + (int64_t)l * n_features;
            if (n_features == 2) {
                const float g0 = g[0], g1 = g[1];
                for (int c = 0; c < 8; ++c) {
                    float *entry = grad_table + rows[c] * 2;
                    entry[0] += w[c] * g0;
                    entry[1] += w[c] * g1;
                }
                continue;
            }
            for (int c = 0; c < 8; ++c) {
                float *entry = grad_table + rows[c] * n_features;
                for (int f = 0; f < n_features; ++f) entry[f] += w[c] * g[f];
            }
        }
    }
}
