/* Ray marching through the occupancy grid for bounded ("object") scenes, the hot loop of
 * render/render.py's _march_object without its [rays x steps] temporaries.
 *
 * Same arithmetic, in the same order, as the PyTorch twin (compiled with -ffp-contract=off), so both
 * keep exactly the same samples. Two passes over the rays: count the kept steps of each ray, then (after
 * the caller's prefix sum) write them packed and sorted by ray. Threads split the rays; each ray's
 * output range is its own, so the result does not depend on the thread count.
 */
#include <math.h>
#include <stdint.h>

typedef struct {
    const float *origins, *directions; /* [R, 3] in scene coordinates ([-1, 1]^3 is the box) */
    const float *t_near, *t_far, *shift; /* [R] */
    const int64_t *n_steps;              /* [R] fine steps across the box */
    const uint8_t *occupied;             /* [res^3] occupancy grid over the unit cube */
    int64_t resolution;
    float step, inv_step;
    const uint8_t *coarse;               /* [ceil(res / 2^shift)^3]: any fine cell occupied inside? */
    int coarse_shift;                    /* coarse cells are 2^coarse_shift fine cells per side */
    int64_t coarse_resolution;
} March;

/* The cell of x in [0, resolution), clamped: truncation as torch's .long(), clamped before converting, so NaN
 * (cell 0) and values far outside never reach the float-to-integer cast (undefined behaviour); the same cells as
 * OccupancyGrid.cell_index. */
static inline int64_t clamp_cell(float x, int64_t resolution) {
    if (!(x > 0.0f)) return 0;
    if (x >= (float)resolution) return resolution - 1;
    return (int64_t)x;
}

/* Step k's midpoint lies in the empty cell `cell` (2^size_shift occupancy cells per side): the last step whose
 * midpoint is still inside it, where the ray leaves the cell (a 1% step margin absorbs rounding, and the
 * first step at k = 0, the only one whose clamping moves its midpoint forward, is never skipped). */
static inline int64_t last_step_in_cell(const March *m, const float *o, const float inv_d[3], float tn, float sh,
                                        const int64_t cell[3], int size_shift, int64_t k) {
    /* Multiplications by precomputed reciprocals: the divisions made a skip cost as much as 5 steps (measured). */
    const float cell_size = 2.0f / (float)m->resolution;
    float t_exit = 1e30f;
    for (int a = 0; a < 3; ++a) {
        if (inv_d[a] == 0.0f) continue;
        const int64_t face = (inv_d[a] > 0.0f ? cell[a] + 1 : cell[a]) << size_shift;
        const float t = ((float)face * cell_size - 1.0f - o[a]) * inv_d[a];
        if (t < t_exit) t_exit = t;
    }
    /* first step whose midpoint tn + (k + sh) * step reaches t_exit */
    const float next = (t_exit - tn) * m->inv_step - sh - 0.01f;
    if (!(next > 0.0f && next < 1e9f)) return k; /* next <= 0 never skips; NaN or -inf must not be cast */
    const int64_t first = (int64_t)next + 1; /* >= ceil(next) for next > 0; smaller next never skips */
    return first > k + 1 ? first - 1 : k;
}

/* Writes a kept step at index `kept` of the outputs (the counting pass passes NULL and only counts). */
static inline void emit(int64_t kept, int64_t r, float start, float end, const float u[3], int64_t *ray_out,
                        float *starts_out, float *ends_out, float *u_out) {
    if (ray_out == 0) return;
    ray_out[kept] = r;
    starts_out[kept] = start;
    ends_out[kept] = end;
    for (int a = 0; a < 3; ++a) u_out[3 * kept + a] = u[a];
}

/* The kept steps of ray r; writes them at out (if not NULL). Returns their number. */
static int64_t march_ray(const March *m, int64_t r, int64_t *ray_out, float *starts_out, float *ends_out,
                         float *u_out) {
    const float *o = m->origins + 3 * r, *d = m->directions + 3 * r;
    const float tn = m->t_near[r], tf = m->t_far[r], sh = m->shift[r];
    const int64_t res = m->resolution;
    /* a ray with a NaN or infinite input misses everything (the caller gives it no steps either) */
    if (!(isfinite(tn) && isfinite(tf) && isfinite(sh))) return 0;
    for (int a = 0; a < 3; ++a)
        if (!(isfinite(o[a]) && isfinite(d[a]))) return 0;
    float inv_d[3];
    for (int a = 0; a < 3; ++a) inv_d[a] = d[a] == 0.0f ? 0.0f : 1.0f / d[a];
    int64_t kept = 0;
    for (int64_t k = 0; k < m->n_steps[r]; ++k) {
        const float kf = (float)k;
        float start = tn + ((kf + sh) - 0.5f) * m->step;
        float end = tn + ((kf + sh) + 0.5f) * m->step;
        if (start < tn) start = tn;
        if (end > tf) end = tf;
        if (!(end > start)) continue;
        const float mid = (start + end) * 0.5f;
        float u[3];
        int64_t c[3];
        for (int a = 0; a < 3; ++a) {
            u[a] = (o[a] + d[a] * mid + 1.0f) * 0.5f;
            c[a] = clamp_cell(u[a] * (float)res, res);
        }
        /* shifts, not divisions: a 64-bit division per axis made each step several times slower (measured) */
        const int64_t rc = m->coarse_resolution;
        const int64_t cc[3] = {c[0] >> m->coarse_shift, c[1] >> m->coarse_shift, c[2] >> m->coarse_shift};
        if (!m->coarse[(cc[0] * rc + cc[1]) * rc + cc[2]]) {
            k = last_step_in_cell(m, o, inv_d, tn, sh, cc, m->coarse_shift, k);
            continue;
        }
        /* (skipping empty fine cells the same way cost more than it saved: measured) */
        if (!m->occupied[(c[0] * res + c[1]) * res + c[2]]) continue;
        emit(kept++, r, start, end, u, ray_out, starts_out, ends_out, u_out);
    }
    return kept;
}

static March make(const float *origins, const float *directions, const float *t_near, const float *t_far,
                  const float *shift, const int64_t *n_steps, const uint8_t *occupied, int64_t resolution,
                  float step, const uint8_t *coarse, int coarse_shift) {
    const int64_t rc = (resolution + ((int64_t)1 << coarse_shift) - 1) >> coarse_shift;
    March m = {origins, directions, t_near, t_far, shift, n_steps, occupied, resolution, step, 1.0f / step, coarse,
               coarse_shift, rc};
    return m;
}

void march_count(const float *origins, const float *directions, const float *t_near, const float *t_far,
                 const float *shift, const int64_t *n_steps, int64_t n_rays, const uint8_t *occupied,
                 int64_t resolution, float step, const uint8_t *coarse, int coarse_shift, int64_t *counts,
                 int threads) {
    const March m = make(origins, directions, t_near, t_far, shift, n_steps, occupied, resolution, step, coarse,
                         coarse_shift);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 256)
    for (int64_t r = 0; r < n_rays; ++r) counts[r] = march_ray(&m, r, 0, 0, 0, 0);
}

void march_fill(const float *origins, const float *directions, const float *t_near, const float *t_far,
                const float *shift, const int64_t *n_steps, int64_t n_rays, const uint8_t *occupied,
                int64_t resolution, float step, const uint8_t *coarse, int coarse_shift, const int64_t *first,
                int64_t *ray_out, float *starts_out, float *ends_out, float *u_out, int threads) {
    const March m = make(origins, directions, t_near, t_far, shift, n_steps, occupied, resolution, step, coarse,
                         coarse_shift);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 256)
    for (int64_t r = 0; r < n_rays; ++r) {
        const int64_t f = first[r];
        march_ray(&m, r, ray_out + f, starts_out + f, ends_out + f, u_out + 3 * f);
    }
}

/* ---- Unbounded scenes: render/unbounded.py's "contracted" schedule, the twin of contracted_schedule +
 * field_coords + OccupancyGrid.query. Every operation in the same order and precision as the PyTorch twin
 * (divisions by Python scalars are multiplications by float reciprocals on both sides). */

#define UB_NEAR 0.05f
#define UB_FAR 1000.0f

typedef struct {
    const float *origins, *directions, *shift; /* [R, 3], [R, 3], [R] in scene coordinates */
    const uint8_t *occupied;                   /* [res^3] occupancy grid over the contracted cube's unit cube */
    int64_t resolution;
    float inv_step, inv_outer;                 /* float(1 / step), float(1 / n_outer) */
    int64_t n_outer, max_inner;
} Unbounded;

/* render.unbounded.cube_exit for a ray with finite origin and direction */
static float ub_cube_exit(const float *o, const float *d) {
    float t_far = 0.0f;
    for (int a = 0; a < 3; ++a) {
        const float safe = fabsf(d[a]) < 1e-9f ? 1e-9f : d[a];
        const float inv = 1.0f / safe;
        const float lo = (-1.0f - o[a]) * inv, hi = (1.0f - o[a]) * inv;
        const float m = lo > hi ? lo : hi;
        if (a == 0 || m < t_far) t_far = m;
    }
    if (!(t_far >= UB_NEAR)) t_far = UB_NEAR;
    if (t_far > UB_FAR) t_far = UB_FAR;
    return t_far;
}

/* render.unbounded.contracted_edges */
static float ub_edge(float p, float te, float n_in, const Unbounded *m) {
    if (p <= n_in) {
        const float n = n_in < 1.0f ? 1.0f : n_in;
        return UB_NEAR + (te - UB_NEAR) * (p / n);
    }
    const float q_far = 1.0f / ((UB_FAR - te) + 1.0f);
    float f = (p - n_in) * m->inv_outer;
    if (f < 0.0f) f = 0.0f;
    if (f > 1.0f) f = 1.0f;
    const float q = 1.0f - (1.0f - q_far) * f;
    return (te - 1.0f) + 1.0f / q;
}

static int64_t ub_march_ray(const Unbounded *m, int64_t r, int64_t *ray_out, float *starts_out, float *ends_out,
                            float *u_out) {
    const float *o = m->origins + 3 * r, *d = m->directions + 3 * r;
    const float sh = m->shift[r];
    if (!isfinite(sh)) return 0;
    for (int a = 0; a < 3; ++a)
        if (!(isfinite(o[a]) && isfinite(d[a]))) return 0;
    const float te = ub_cube_exit(o, d);
    int64_t n_inner = (int64_t)ceilf((te - UB_NEAR) * m->inv_step);
    if (n_inner < 0) n_inner = 0;
    if (n_inner > m->max_inner) n_inner = m->max_inner;
    const float n_in = (float)n_inner, total = (float)(n_inner + m->n_outer);
    const int64_t n_edges = n_inner + m->n_outer + 3;
    const int64_t res = m->resolution;
    int64_t kept = 0;
    float p = ((0.0f + sh) - 1.5f);
    if (p < 0.0f) p = 0.0f;
    if (p > total) p = total;
    float start = ub_edge(p, te, n_in, m);
    for (int64_t k = 1; k < n_edges; ++k) {
        p = (((float)k + sh) - 1.5f);
        if (p < 0.0f) p = 0.0f;
        if (p > total) p = total;
        const float end = ub_edge(p, te, n_in, m);
        if (end > start) {
            const float mid = (start + end) * 0.5f;
            float x[3], mag = 0.0f;
            for (int a = 0; a < 3; ++a) {
                x[a] = o[a] + d[a] * mid;
                const float ax = fabsf(x[a]);
                if (ax > mag) mag = ax;
            }
            float u[3];
            int64_t c[3];
            for (int a = 0; a < 3; ++a) {
                const float contracted = mag < 1.0f ? x[a] : (2.0f - (1.0f / mag)) * (x[a] / mag);
                u[a] = (contracted + 2.0f) * 0.25f;
                c[a] = clamp_cell(u[a] * (float)res, res);
            }
            if (m->occupied[(c[0] * res + c[1]) * res + c[2]]) {
                emit(kept++, r, start, end, u, ray_out, starts_out, ends_out, u_out);
            }
        }
        start = end;
    }
    return kept;
}

static Unbounded ub_make(const float *origins, const float *directions, const float *shift, const uint8_t *occupied,
                         int64_t resolution, float inv_step, float inv_outer, int64_t n_outer, int64_t max_inner) {
    Unbounded m = {origins, directions, shift, occupied, resolution, inv_step, inv_outer, n_outer, max_inner};
    return m;
}

void march_unbounded_count(const float *origins, const float *directions, const float *shift, int64_t n_rays,
                           const uint8_t *occupied, int64_t resolution, float inv_step, float inv_outer,
                           int64_t n_outer, int64_t max_inner, int64_t *counts, int threads) {
    const Unbounded m = ub_make(origins, directions, shift, occupied, resolution, inv_step, inv_outer, n_outer,
                                max_inner);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 256)
    for (int64_t r = 0; r < n_rays; ++r) counts[r] = ub_march_ray(&m, r, 0, 0, 0, 0);
}

void march_unbounded_fill(const float *origins, const float *directions, const float *shift, int64_t n_rays,
                          const uint8_t *occupied, int64_t resolution, float inv_step, float inv_outer,
                          int64_t n_outer, int64_t max_inner, const int64_t *first, int64_t *ray_out,
                          float *starts_out, float *ends_out, float *u_out, int threads) {
    const Unbounded m = ub_make(origins, directions, shift, occupied, resolution, inv_step, inv_outer, n_outer,
                                max_inner);
#pragma omp parallel for num_threads(threads) schedule(dynamic, 256)
    for (int64_t r = 0; r < n_rays; ++r) {
        const int64_t f = first[r];
        ub_march_ray(&m, r, ray_out + f, starts_out + f, ends_out + f, u_out + 3 * f);
    }
}
