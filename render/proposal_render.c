/* The proposal sampler's render path (render/proposal_fused.py): nerfstudio's ProposalNetworkSampler without
 * gradients or jitter, one ray at a time, each pass's densities looked up in its proposal field's bake
 * (render/proposal_bake.py).
 *
 * A lookup is exp of the log density trilinearly interpolated at u * R on the bake's (R+1)^3 vertex grid, u clamped
 * to the unit cube, as torch's grid_sample (align_corners=True, padding "border") interpolates it (the Python twin),
 * without that op's general [N, C, D, H, W] machinery: its 88M lookups took 2.1 of a 1280x720 frame's 12.6 s
 * (fox-small, 2026-12-07). The lookup also checks that the cell's block of the lazily filled bake is filled: one that
 * is not set in `filled` is marked in `needed`, and the caller fills those blocks and calls again; a NULL `filled`
 * means the bake is complete. A block of B cells per side owns vertices [bB - 1, bB + B + 1] (its fill has a halo of
 * one), so the cell's block covers all eight of its vertices. Threads split the rays; each writes its own outputs, so
 * the result does not depend on the thread count.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>


typedef struct {
    const float *log_density; /* [(R+1)^3], z-major */
    int64_t resolution, n_blocks;
    int block_shift;          /* blocks are 2^block_shift cells a side (a shift, not three divisions per lookup) */
    const uint8_t *filled;    /* [n_blocks^3], or NULL once the bake is complete */
    uint8_t *needed;          /* [n_blocks^3]: blocks a lookup found unfilled */
} Bake;

/* Density at u (the unit cube), or -1 (and the block marked in `needed`) when its block is not filled yet. */
static inline float lookup(const Bake *bake, const float u[3]) {
    const int64_t resolution = bake->resolution, side = resolution + 1;
    const float r = (float)resolution;
    float frac[3];
    int64_t cell[3];
    for (int d = 0; d < 3; ++d) { /* comparisons and a truncation, not libm's fmaxf/fminf/floorf calls */
        float v = u[d] * r;
        v = v > 0.0f ? v : 0.0f; /* NaN -> 0 */
        v = v < r ? v : r;
        int32_t fl = (int32_t)v; /* floor, as v >= 0 */
        fl = fl < (int32_t)resolution - 1 ? fl : (int32_t)resolution - 1; /* v = R: the last cell with frac 1 */
        frac[d] = v - (float)fl;
        cell[d] = fl;
    }
    if (bake->filled != NULL) {
        const int64_t n = bake->n_blocks, b = bake->block_shift;
        const int64_t index = (cell[0] >> b) + n * ((cell[1] >> b) + n * (cell[2] >> b));
        if (!bake->filled[index]) {
            __atomic_store_n(&bake->needed[index], 1, __ATOMIC_RELAXED); /* writers race to store the same byte */
            return -1.0f;
        }
    }
    const float *v000 = bake->log_density + (cell[2] * side + cell[1]) * side + cell[0];
    const float *v010 = v000 + side, *v100 = v000 + side * side, *v110 = v100 + side;
    const float fx = frac[0], fy = frac[1], fz = frac[2], gx = 1.0f - fx, gy = 1.0f - fy, gz = 1.0f - fz;
    const float value = gz * (gy * (gx * v000[0] + fx * v000[1]) + fy * (gx * v010[0] + fx * v010[1]))
                      + fz * (gy * (gx * v100[0] + fx * v100[1]) + fy * (gx * v110[0] + fx * v110[1]));
    return expf(value);
}

/* The sampler: lin-disp bins (UniformLinDispPiecewiseSampler),
 * then per pass the baked density at the samples' midpoints, compositing weights (RaySamples.get_weights) and
 * inverse-CDF resampling (PDFSampler, histogram padding 0.01, eps 1e-5, bin centres), in float32 and in the same
 * order of operations except the transmittance, a running product instead of exp of a running sum. */
#define MAX_BINS 1025 /* 1024 samples + 1 per pass (proposal_fused.MAX_PASS_SAMPLES; more: nerfstudio's sampler) */

static inline float spacing(float x) { return x < 1.0f ? x / 2.0f : 1.0f - 1.0f / (2.0f * x); }
static inline float spacing_inv(float x) { return x < 0.5f ? 2.0f * x : 1.0f / (2.0f - 2.0f * x); }

/* torch.linspace(0, 1, steps) element k (its two-sided formula) */
static inline float linspace01(int64_t k, int64_t steps) {
    const float step = 1.0f / (float)(steps - 1);
    return k < steps / 2 ? (float)k * step : 1.0f - (float)(steps - 1 - k) * step;
}

/* Weights [n] of one pass's n samples between spacing bins s[0..n]; returns 0 when a lookup hit an unfilled block. */
static int pass_weights(const Bake *bake, const float o[3], const float d[3], const float *s, int n, float s_near,
                        float s_far, float *euclid, float *w) {
    for (int k = 0; k <= n; ++k) euclid[k] = spacing_inv(s[k] * s_far + (1.0f - s[k]) * s_near);
    float transmittance = 1.0f;
    int complete = 1;
    for (int i = 0; i < n; ++i) {
        const float mid = (euclid[i] + euclid[i + 1]) / 2.0f;
        float p[3], u[3];
        for (int c = 0; c < 3; ++c) p[c] = o[c] + d[c] * mid;
        const float ax = fabsf(p[0]), ay = fabsf(p[1]), az = fabsf(p[2]);
        const float axy = ax > ay ? ax : ay, mag = axy > az ? axy : az; /* amax (NaN: see the lookup) */
        for (int c = 0; c < 3; ++c) u[c] = ((mag < 1.0f ? p[c] : (2.0f - 1.0f / mag) * (p[c] / mag)) + 2.0f) * 0.25f;
        const float density = lookup(bake, u);
        if (density < 0.0f) {
            complete = 0;
            w[i] = 0.0f;
            continue;
        }
        const float clear = expf(-((euclid[i + 1] - euclid[i]) * density)); /* 1 - alpha */
        const float weight = (1.0f - clear) * transmittance;
        w[i] = isnan(weight) ? 0.0f : weight;
        transmittance *= clear;
    }
    return complete;
}

/* PDFSampler: m + 1 new spacing bins `out` from n weights over the spacing bins s[0..n]. */
static void resample(const float *s, const float *w, int n, int m, float *out) {
    float cdf[MAX_BINS];
    float sum = 0.0f;
    for (int i = 0; i < n; ++i) sum += w[i] + 0.01f;
    const float padding = 1e-5f - sum > 0.0f ? 1e-5f - sum : 0.0f; /* (comparisons, not libm calls, here too) */
    const float total = sum + padding;
    cdf[0] = 0.0f;
    float acc = 0.0f;
    for (int i = 0; i < n; ++i) {
        acc += (w[i] + 0.01f + padding / (float)n) / total;
        cdf[i + 1] = acc < 1.0f ? acc : 1.0f;
    }
    int j = 0; /* the u are increasing: walk the cdf once */
    for (int k = 0; k <= m; ++k) {
        const float u = linspace01(k, m + 1) * (1.0f - 1.0f / (float)(m + 1)) + 1.0f / (2.0f * (float)(m + 1));
        while (j <= n && cdf[j] <= u) ++j; /* searchsorted(side="right"): first index with cdf > u */
        const int below = j - 1 < 0 ? 0 : (j - 1 > n ? n : j - 1), above = j > n ? n : j;
        const float span = cdf[above] - cdf[below];
        float t = (u - cdf[below]) / span;
        t = isnan(t) || t < 0.0f ? 0.0f : (t > 1.0f ? 1.0f : t);
        out[k] = s[below] + t * (s[above] - s[below]);
    }
}

/* The final spacing bins [R, nerf_samples + 1] of each ray. Returns 1 when some lookup hit an unfilled block of a
 * bake (marked in its `needed`): the caller fills them and calls again; -1 for counts it does not take. */
int proposal_render_bins(const float *origins, const float *directions, int64_t n_rays, float near, float far,
                         int n_passes, const int *pass_samples, int nerf_samples, const float *const *grids,
                         const int64_t *resolutions, const uint8_t *const *filled, uint8_t *const *needed,
                         int64_t block, float *out, int n_threads) {
    Bake bakes[3];
    if (n_passes < 1 || n_passes > 3 || nerf_samples >= MAX_BINS) return -1;
    for (int p = 0; p < n_passes; ++p) {
        if (pass_samples[p] < 1 || pass_samples[p] >= MAX_BINS) return -1;
        bakes[p] = (Bake){grids[p], resolutions[p], (resolutions[p] + block - 1) / block, __builtin_ctzll(block),
                          filled[p], needed[p]};
    }
    const float s_near = spacing(near), s_far = spacing(far);
    int missing = 0;
#pragma omp parallel for num_threads(n_threads) schedule(dynamic, 256) reduction(| : missing)
    for (int64_t r = 0; r < n_rays; ++r) {
        float s[MAX_BINS], next[MAX_BINS], euclid[MAX_BINS], w[MAX_BINS];
        int n = pass_samples[0];
        for (int k = 0; k <= n; ++k) s[k] = linspace01(k, n + 1);
        int complete = 1;
        for (int p = 0; p < n_passes; ++p) {
            complete &= pass_weights(&bakes[p], origins + 3 * r, directions + 3 * r, s, n, s_near, s_far, euclid, w);
            const int m = p + 1 < n_passes ? pass_samples[p + 1] : nerf_samples;
            resample(s, w, n, m, next);
            for (int k = 0; k <= m; ++k) s[k] = next[k];
            n = m;
        }
        missing |= !complete;
        for (int k = 0; k <= n; ++k) out[r * (n + 1) + k] = s[k];
    }
    return missing;
}
