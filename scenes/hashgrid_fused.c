/* Fused multiresolution hash encoding for the CPU: the same layout, hash and trilinear weights as
 * scenes/hashgrid.py (and tiny-cuda-nn's HashGrid), without building [P, 8, F] temporaries.
 *
 * Loops run level-major within tiles of points (TILE_BYTES) so that one level's table stays in cache while the
 * tile's points visit it, and the tile's output rows stay in cache across the levels.
 * Forward: threads split the points of a level (each writes its own output rows).
 * Backward: threads split the levels; a level's table rows belong to one thread, which adds its
 * points in order, so gradients are bit-for-bit reproducible whatever the thread count.
 * Compiled with -ffp-contract=off so no fused multiply-add changes the rounding of the reference. Two features per
 * level (every grid Vista builds) take a path of scalars instead of a loop over a stack array: the same operations
 * in the same order, so the same bits, and a 1.7x faster forward (bench/results/hashgrid-two-features.json).
 */
#include <math.h>
#include <omp.h>
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
#define CLONES __attribute__((target_clones("avx512f", "arch=x86-64-v3", "default")))

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

/* Blocks of points whose grid positions at a level all lie in [0, limit) (every point of a NeRF field, whose
 * coordinates are in [0, 1]) take a blocked path: the corner rows (32-bit) and weights of BLOCK points first, then
 * the table reads, which no longer wait behind index arithmetic (on 131k points, forward 1.55x / 1.74x, forward
 * and backward 1.32x / 1.57x for the preview NeRF grid / a proposal grid: bench/results/hashgrid-blocks-*.json).
 * limit keeps those integers exact: below 2^24 (cell indices exact in a float and an int32) and, on a dense level,
 * below resolution + 1 (so its index stays below 2^25). The same operations in the same order per point as
 * `corners`, so the same bits; a block with any other point (or a grid with other than two features per level)
 * goes through `corners`, point by point. */
#define BLOCK 16
#define DENSE 0
#define HASHED 1 /* a power-of-two table with the prime hash */
#define OTHER 2  /* a hashed level whose size is not a power of two (no grid Vista builds): `corners` only */

typedef struct {
    uint32_t idx[8][BLOCK];
    float w[8][BLOCK];
} Block;

typedef struct {
    float scale, limit;
    uint32_t res, size;
    int kind;
} Level;

static Level level_of(const float *scales, const int64_t *resolutions, const int64_t *offsets, int l) {
    Level lv;
    const uint64_t res = (uint64_t)resolutions[l], size = (uint64_t)(offsets[l + 1] - offsets[l]);
    lv.scale = scales[l];
    lv.res = (uint32_t)res;
    lv.size = (uint32_t)size;
    if (res * res * res <= size) {
        lv.kind = DENSE;
        lv.limit = res + 1 < (1u << 24) ? (float)(res + 1) : 0x1p24f;
    } else {
        lv.kind = (size & (size - 1)) == 0 ? HASHED : OTHER;
        lv.limit = 0x1p24f;
    }
    return lv;
}

/* Fills `b` for the BLOCK points at x; returns 0 (b unusable) when one of them is outside [0, limit). */
CLONES static int block_corners(const float *x, const Level *lv, Block *b) {
    float frac[3][BLOCK];
    uint32_t cell[3][BLOCK];
    int outside = 0;
    for (int i = 0; i < BLOCK; ++i) {
        for (int d = 0; d < 3; ++d) {
            float pos = x[3 * i + d] * lv->scale + 0.5f;
            outside |= !(pos >= 0.0f && pos < lv->limit);
            pos = pos >= 0.0f && pos < lv->limit ? pos : 0.0f;
            const float fl = floorf(pos);
            frac[d][i] = pos - fl;
            cell[d][i] = (uint32_t)(int32_t)fl;
        }
    }
    if (outside) return 0;
    for (int c = 0; c < 8; ++c) {
        const uint32_t bx = c & 1, by = (c >> 1) & 1, bz = (c >> 2) & 1;
        for (int i = 0; i < BLOCK; ++i) {
            const uint32_t cx = cell[0][i] + bx, cy = cell[1][i] + by, cz = cell[2][i] + bz;
            b->idx[c][i] = lv->kind == DENSE ? cx + cy * lv->res + cz * lv->res * lv->res
                                             : (cx ^ (cy * PRIME_Y) ^ (cz * PRIME_Z)) & (lv->size - 1);
            const float wx = bx ? frac[0][i] : 1.0f - frac[0][i];
            const float wy = by ? frac[1][i] : 1.0f - frac[1][i];
            const float wz = bz ? frac[2][i] : 1.0f - frac[2][i];
            b->w[c][i] = wx * wy * wz;
        }
    }
    if (lv->kind == DENSE) { /* an index past the level's rows (the upper boundary cell) wraps, as in `corners` */
        for (int c = 0; c < 8; ++c)
            for (int i = 0; i < BLOCK; ++i)
                if (b->idx[c][i] >= lv->size) b->idx[c][i] %= lv->size;
    }
    return 1;
}

static void point_forward(const float *x, const float *table, int n_features, const Level *lv, int64_t offset,
                          float *o) {
    int64_t rows[8];
    float w[8];
    float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    if (corners(x, lv->scale, lv->res, offset, lv->size, rows, w)) {
        for (int c = 0; c < 8; ++c) {
            const float *entry = table + rows[c] * n_features;
            for (int f = 0; f < n_features; ++f) acc[f] += w[c] * entry[f];
        }
    }
    for (int f = 0; f < n_features; ++f) o[f] = acc[f];
}

CLONES static void block_forward2(const Block *b, const float *level_table, float *o, int64_t stride) {
    for (int i = 0; i < BLOCK; ++i) {
        float a0 = 0.0f, a1 = 0.0f;
        for (int c = 0; c < 8; ++c) { /* corners in order: the sums of `corners` */
            const float *entry = level_table + (int64_t)b->idx[c][i] * 2;
            a0 += b->w[c][i] * entry[0];
            a1 += b->w[c][i] * entry[1];
        }
        o[i * stride] = a0;
        o[i * stride + 1] = a1;
    }
}

/* Whether block k takes the blocked path (filling `b`). */
static inline int fast_block(const float *x, int64_t n_points, int n_features, const Level *lv, int64_t k, Block *b) {
    const int64_t p0 = k * BLOCK;
    return n_features == 2 && lv->kind != OTHER && p0 + BLOCK <= n_points && block_corners(x + 3 * p0, lv, b);
}

/* Asks for the table rows of a filled block ahead of their use: a thread finds the next block's rows, prefetches
 * them and only then reads the current block's, so the cache misses of the finer levels (a level's 2^17 rows are
 * about a core's L2) overlap with work instead of stalling it. (Two calls: the read/write hint must be a constant.) */
static inline void prefetch_rows(const Block *b, const float *level_table, int for_write) {
    for (int c = 0; c < 8; ++c)
        for (int i = 0; i < BLOCK; ++i) {
            if (for_write) __builtin_prefetch(level_table + (int64_t)b->idx[c][i] * 2, 1, 3);
            else __builtin_prefetch(level_table + (int64_t)b->idx[c][i] * 2, 0, 3);
        }
}

static void forward_tile(const float *x, int64_t n_points, const float *table, int n_features, int n_levels,
                         const float *scales, const int64_t *resolutions, const int64_t *offsets, float *out,
                         int n_threads) {
    const int64_t stride = (int64_t)n_levels * n_features, n_blocks = (n_points + BLOCK - 1) / BLOCK;
    for (int l = 0; l < n_levels; ++l) {
        const Level lv = level_of(scales, resolutions, offsets, l);
        const int64_t offset = offsets[l];
        const float *level_table = table + offset * n_features;
#pragma omp parallel num_threads(n_threads)
        {
            const int t = omp_get_thread_num(), nt = omp_get_num_threads();
            const int64_t lo = n_blocks * t / nt, hi = n_blocks * (t + 1) / nt;
            Block blocks[2];
            int fast[2] = {0, 0};
            if (lo < hi) fast[lo & 1] = fast_block(x, n_points, n_features, &lv, lo, &blocks[lo & 1]);
            for (int64_t k = lo; k < hi; ++k) {
                const int cur = (int)(k & 1), next = cur ^ 1;
                if (k + 1 < hi && (fast[next] = fast_block(x, n_points, n_features, &lv, k + 1, &blocks[next])))
                    prefetch_rows(&blocks[next], level_table, 0);
                const int64_t p0 = k * BLOCK;
                if (fast[cur]) {
                    block_forward2(&blocks[cur], level_table, out + p0 * stride + (int64_t)l * n_features, stride);
                    continue;
                }
                for (int64_t p = p0; p < n_points && p < p0 + BLOCK; ++p)
                    point_forward(x + 3 * p, table, n_features, &lv, offset,
                                  out + p * stride + (int64_t)l * n_features);
            }
        }
    }
}

/* Points go through the levels a tile at a time: a level writes (or, backward, reads) 8 bytes of each point's
 * output row (128 bytes with 16 levels), so a whole call's rows (12.6 MB for a training step's 98k NeRF samples,
 * 50 MB for a 1280x720 frame's chunk) streamed through memory once per level; a tile's rows stay in a core's cache.
 * TILE_BYTES of rows measured best among 0.25-4 MB on fox-small's training step (bench/results/hashgrid-tiles.json);
 * tiles are whole BLOCKs, so the blocks and the bits are unchanged. */
#define TILE_BYTES (1 << 20)

static int64_t tile_points(int64_t stride) {
    const int64_t points = TILE_BYTES / (stride * (int64_t)sizeof(float));
    return points < BLOCK ? BLOCK : points - points % BLOCK;
}

void hashgrid_forward(const float *x, int64_t n_points, const float *table, int n_features, int n_levels,
                      const float *scales, const int64_t *resolutions, const int64_t *offsets, float *out,
                      int n_threads) {
    const int64_t stride = (int64_t)n_levels * n_features;
    const int64_t tile = tile_points(stride);
    for (int64_t t0 = 0; t0 < n_points; t0 += tile) {
        const int64_t n = n_points - t0 < tile ? n_points - t0 : tile;
        forward_tile(x + 3 * t0, n, table, n_features, n_levels, scales, resolutions, offsets, out + t0 * stride,
                     n_threads);
    }
}

static void point_backward(const float *x, const float *g, int n_features, const Level *lv, int64_t offset,
                           float *grad_table) {
    int64_t rows[8];
    float w[8];
    if (!corners(x, lv->scale, lv->res, offset, lv->size, rows, w)) return;
    for (int c = 0; c < 8; ++c) {
        float *entry = grad_table + rows[c] * n_features;
        for (int f = 0; f < n_features; ++f) entry[f] += w[c] * g[f];
    }
}

/* One tile of points (TILE_BYTES); threads split the levels. */
static void backward_tile(const float *x, int64_t n_points, const float *grad_out, int n_features, int n_levels,
                          const float *scales, const int64_t *resolutions, const int64_t *offsets,
                          float *grad_table, int n_threads) {
    const int64_t stride = (int64_t)n_levels * n_features;
#pragma omp parallel for num_threads(n_threads) schedule(dynamic, 1)
    for (int l = n_levels - 1; l >= 0; --l) { /* fine (slow) levels first for balance */
        const Level lv = level_of(scales, resolutions, offsets, l);
        const int64_t offset = offsets[l];
        float *level_grad = grad_table + offset * n_features;
        const int64_t n_blocks = (n_points + BLOCK - 1) / BLOCK;
        Block blocks[2];
        int fast[2] = {0, 0};
        if (n_blocks > 0) fast[0] = fast_block(x, n_points, n_features, &lv, 0, &blocks[0]);
        for (int64_t k = 0; k < n_blocks; ++k) {
            const int cur = (int)(k & 1), next = cur ^ 1;
            if (k + 1 < n_blocks && (fast[next] = fast_block(x, n_points, n_features, &lv, k + 1, &blocks[next])))
                prefetch_rows(&blocks[next], level_grad, 1);
            const int64_t p0 = k * BLOCK;
            const float *g = grad_out + p0 * stride + (int64_t)l * n_features;
            if (fast[cur]) {
                const Block *b = &blocks[cur];
                for (int i = 0; i < BLOCK; ++i) { /* points in order, corners in order: the bits of `corners` */
                    const float g0 = g[i * stride], g1 = g[i * stride + 1];
                    for (int c = 0; c < 8; ++c) {
                        float *entry = level_grad + (int64_t)b->idx[c][i] * 2;
                        entry[0] += b->w[c][i] * g0;
                        entry[1] += b->w[c][i] * g1;
                    }
                }
                continue;
            }
            for (int64_t p = p0; p < n_points && p < p0 + BLOCK; ++p)
                point_backward(x + 3 * p, grad_out + p * stride + (int64_t)l * n_features, n_features, &lv, offset,
                               grad_table);
        }
    }
}

/* grad_table must be zero on entry; it receives d(loss)/d(table) given d(loss)/d(out). Tiles run in order and a
 * tile's points in order, so each row still sums its points in order (TILE_BYTES). */
void hashgrid_backward(const float *x, int64_t n_points, const float *grad_out, int n_features, int n_levels,
                       const float *scales, const int64_t *resolutions, const int64_t *offsets,
                       float *grad_table, int n_threads) {
    const int64_t stride = (int64_t)n_levels * n_features;
    const int64_t tile = tile_points(stride);
    for (int64_t t0 = 0; t0 < n_points; t0 += tile) {
        const int64_t n = n_points - t0 < tile ? n_points - t0 : tile;
        backward_tile(x + 3 * t0, n, grad_out + t0 * stride, n_features, n_levels, scales, resolutions, offsets,
                      grad_table, n_threads);
    }
}
