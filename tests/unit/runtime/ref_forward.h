/*
 * ref_forward.h: an independent, straightforward llama / qwen2 forward pass
 * in double precision, for checking the runtime's logits (header-only: the
 * test that includes it is the only user).
 *
 * It shares nothing with the runtime but the GGUF reader (to find tensors):
 * it decodes F32 / F16 / Q8_0 / Q4_0 with its own code written from the
 * GGUF block layouts, dequantizes every matrix into doubles up front, reads
 * the hyper-parameters itself, and computes the textbook formulas with no
 * KV cache (every position attends over all earlier ones directly):
 *   x = E[tok]; per layer: h = rms(x)*g; q,k,v = W h (+b); rotary on q,k
 *   (llama: pairs (2i,2i+1); qwen2: pairs (i,i+d/2)); causal softmax
 *   attention with GQA head sharing; x += Wo a; x += Wd (silu(Wg h) * Wu h)
 *   with h = rms(x)*g2; logits = Wout (rms(x)*gout).
 */
#ifndef REF_FORWARD_H
#define REF_FORWARD_H

#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dify-edge-core/runtime/gguf.h"

/* A matrix decoded to doubles, with the type it is stored in. */
struct ref_mat {
	double *d;
	enum ggml_type type;
};

struct ref_layer {
	double *attn_norm, *bq, *bk, *bv, *ffn_norm;
	struct ref_mat wq, wk, wv, wo, wg, wu, wd;
};

/* How the input of a matrix product is rounded first, to model what the
 * runtime's kernels do to activations: nothing for F32 weights, f16 for F16,
 * Q8_0 blocks for Q8_0 and Q4_0 weights. */
enum ref_act { REF_ACT_EXACT = 0, REF_ACT_F16, REF_ACT_Q8_0 };

struct ref_model {
	int qwen;
	int emulate; /* 0: exact inputs; 1: round them as the kernels do */
	int64_t E, L, F, H, HKV, HD, NROT, V;
	double eps, base, fscale;
	double *tok_embd, *out_norm;
	struct ref_mat output; /* .d NULL when tied */
	enum ggml_type tok_type;
	struct ref_layer *layers;
};

static double ref_half(uint16_t h)
{
	int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
	double v;
	if (e == 0)
		v = ldexp((double)m, -24);
	else if (e == 31)
		v = m ? NAN : INFINITY;
	else
		v = ldexp((double)(m + 1024), e - 25);
	return s ? -v : v;
}

static uint16_t ref_rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

/* Decode a whole tensor (ne0 * rows elements) into doubles; NULL if absent. */
static double *ref_tensor_t(const struct gguf_file *g, const char *name, enum ggml_type *type)
{
	const struct gguf_tensor *t = gguf_find_tensor(g, name);
	if (!t)
		return NULL;
	if (type)
		*type = t->type;
	int64_t n = t->ne[0] * t->ne[1] * t->ne[2] * t->ne[3];
	double *out = malloc((size_t)n * sizeof(double));
	const uint8_t *p = t->data;
	for (int64_t i = 0; i < n; i++) {
		switch (t->type) {
		case GGML_TYPE_F32: {
			float f;
			memcpy(&f, p + 4 * i, 4);
			out[i] = f;
			break;
		}
		case GGML_TYPE_F16:
			out[i] = ref_half(ref_rd16(p + 2 * i));
			break;
		case GGML_TYPE_Q8_0: {
			const uint8_t *b = p + (i / 32) * 34;
			out[i] = ref_half(ref_rd16(b)) * (double)(int8_t)b[2 + i % 32];
			break;
		}
		case GGML_TYPE_Q4_0: {
			const uint8_t *b = p + (i / 32) * 18;
			int j = (int)(i % 32);
			int q = j < 16 ? (b[2 + j] & 15) : (b[2 + j - 16] >> 4);
			out[i] = ref_half(ref_rd16(b)) * (double)(q - 8);
			break;
		}
		default:
			free(out);
			return NULL;
		}
	}
	return out;
}

static double *ref_tensor(const struct gguf_file *g, const char *name)
{
	return ref_tensor_t(g, name, NULL);
}

static struct ref_mat ref_matrix(const struct gguf_file *g, const char *name)
{
	struct ref_mat m = { .d = NULL, .type = GGML_TYPE_F32 };
	m.d = ref_tensor_t(g, name, &m.type);
	return m;
}

static int64_t ref_meta(const struct gguf_file *g, const char *arch, const char *k, int64_t dflt)
{
	char key[128];
	int64_t v;
	snprintf(key, sizeof(key), "%s.%s", arch, k);
	return gguf_get_i64(g, key, &v) == 0 ? v : dflt;
}

static double ref_metaf(const struct gguf_file *g, const char *arch, const char *k, double dflt)
{
	char key[128];
	float v;
	snprintf(key, sizeof(key), "%s.%s", arch, k);
	return gguf_get_f32(g, key, &v) == 0 ? v : dflt;
}

static int ref_load(struct ref_model *r, const struct gguf_file *g)
{
	const char *s;
	size_t len;
	char arch[16] = { 0 }, name[96];
	memset(r, 0, sizeof(*r));
	if (gguf_get_str(g, "general.architecture", &s, &len) || len >= sizeof(arch))
		return -1;
	memcpy(arch, s, len);
	r->qwen = !strcmp(arch, "qwen2");
	r->E = ref_meta(g, arch, "embedding_length", 0);
	r->L = ref_meta(g, arch, "block_count", 0);
	r->F = ref_meta(g, arch, "feed_forward_length", 0);
	r->H = ref_meta(g, arch, "attention.head_count", 0);
	r->HKV = ref_meta(g, arch, "attention.head_count_kv", r->H);
	r->HD = r->E / r->H;
	r->NROT = ref_meta(g, arch, "rope.dimension_count", r->HD);
	r->eps = ref_metaf(g, arch, "attention.layer_norm_rms_epsilon", 1e-5);
	r->base = ref_metaf(g, arch, "rope.freq_base", 10000.0);
	r->fscale = 1.0 / ref_metaf(g, arch, "rope.scaling.factor", 1.0);
	r->V = gguf_find_tensor(g, "token_embd.weight")->ne[1];
	r->tok_embd = ref_tensor_t(g, "token_embd.weight", &r->tok_type);
	r->out_norm = ref_tensor(g, "output_norm.weight");
	r->output = ref_matrix(g, "output.weight");
	r->layers = calloc((size_t)r->L, sizeof(*r->layers));
	for (int64_t l = 0; l < r->L; l++) {
		struct ref_layer *y = &r->layers[l];
#define NAME(suffix) (snprintf(name, sizeof(name), "blk.%lld." suffix, (long long)l), name)
		y->attn_norm = ref_tensor(g, NAME("attn_norm.weight"));
		y->wq = ref_matrix(g, NAME("attn_q.weight"));
		y->wk = ref_matrix(g, NAME("attn_k.weight"));
		y->wv = ref_matrix(g, NAME("attn_v.weight"));
		y->bq = ref_tensor(g, NAME("attn_q.bias"));
		y->bk = ref_tensor(g, NAME("attn_k.bias"));
		y->bv = ref_tensor(g, NAME("attn_v.bias"));
		y->wo = ref_matrix(g, NAME("attn_output.weight"));
		y->ffn_norm = ref_tensor(g, NAME("ffn_norm.weight"));
		y->wg = ref_matrix(g, NAME("ffn_gate.weight"));
		y->wu = ref_matrix(g, NAME("ffn_up.weight"));
		y->wd = ref_matrix(g, NAME("ffn_down.weight"));
#undef NAME
		if (!y->wq.d || !y->wk.d || !y->wv.d || !y->wo.d || !y->wg.d || !y->wu.d || !y->wd.d)
			return -1;
	}
	return r->E && r->L && r->tok_embd ? 0 : -1;
}

static void ref_free(struct ref_model *r)
{
	free(r->tok_embd);
	free(r->out_norm);
	free(r->output.d);
	for (int64_t l = 0; l < r->L; l++) {
		struct ref_layer *y = &r->layers[l];
		double *all[] = { y->attn_norm, y->wq.d, y->wk.d, y->wv.d, y->bq, y->bk, y->bv,
				  y->wo.d, y->ffn_norm, y->wg.d, y->wu.d, y->wd.d };
		for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
			free(all[i]);
	}
	free(r->layers);
}

/* x rounded to the nearest IEEE half (ties to even), range ignored */
static double ref_to_half(double x)
{
	if (x == 0 || !isfinite(x))
		return x;
	int e;
	frexp(fabs(x), &e); /* |x| in [2^(e-1), 2^e) */
	double step = e - 1 < -14 ? ldexp(1, -24) : ldexp(1, e - 1 - 10);
	return nearbyint(x / step) * step;
}

/* Round x[k] as the activations are before a product: f16, or Q8_0 blocks
 * (d = amax/127 stored as f16, q = round(x/d) half away from zero). */
static void ref_round_act(enum ref_act act, double *out, const double *x, int64_t k)
{
	if (act == REF_ACT_EXACT) {
		memcpy(out, x, (size_t)k * sizeof(double));
	} else if (act == REF_ACT_F16) {
		for (int64_t i = 0; i < k; i++)
			out[i] = ref_to_half(x[i]);
	} else {
		for (int64_t b = 0; b < k; b += 32) {
			double amax = 0;
			for (int i = 0; i < 32; i++) {
				double a = fabs((double)(float)x[b + i]);
				if (a > amax)
					amax = a;
			}
			float d = (float)(amax / 127.0);
			float id = d ? 1.0f / d : 0.0f;
			double dh = ref_to_half(d);
			for (int i = 0; i < 32; i++)
				out[b + i] = dh * (double)roundf((float)x[b + i] * id);
		}
	}
}

static int ref_cur_emulate;

/* y[rows] = W[rows][k] round(x[k]) (+ b) */
static void ref_mv(double *y, struct ref_mat Wm, const double *x_in, int64_t rows, int64_t k, const double *b)
{
	const double *W = Wm.d;
	enum ref_act act = !ref_cur_emulate || Wm.type == GGML_TYPE_F32 ? REF_ACT_EXACT
			   : Wm.type == GGML_TYPE_F16 ? REF_ACT_F16 : REF_ACT_Q8_0;
	double *x = malloc((size_t)k * sizeof(double));
	ref_round_act(act, x, x_in, k);
	for (int64_t r = 0; r < rows; r++) {
		double s = b ? b[r] : 0;
		for (int64_t i = 0; i < k; i++)
			s += W[r * k + i] * x[i];
		y[r] = s;
	}
	free(x);
}

static void ref_rms(double *o, const double *x, const double *g, int64_t n, double eps)
{
	double ss = 0;
	for (int64_t i = 0; i < n; i++)
		ss += x[i] * x[i];
	double sc = 1.0 / sqrt(ss / (double)n + eps);
	for (int64_t i = 0; i < n; i++)
		o[i] = x[i] * sc * g[i];
}

static void ref_rope(const struct ref_model *r, double *v, int64_t nh, int64_t pos)
{
	for (int64_t h = 0; h < nh; h++) {
		double *x = v + h * r->HD;
		for (int64_t i = 0; i < r->NROT / 2; i++) {
			double th = (double)pos * r->fscale * pow(r->base, -2.0 * (double)i / (double)r->NROT);
			int64_t a = r->qwen ? i : 2 * i, b = r->qwen ? i + r->NROT / 2 : 2 * i + 1;
			double x0 = x[a], x1 = x[b];
			x[a] = x0 * cos(th) - x1 * sin(th);
			x[b] = x0 * sin(th) + x1 * cos(th);
		}
	}
}

/* logits: [n][V] (may be NULL); hidden: [n][E] final normalized states (may be NULL) */
static void ref_forward(const struct ref_model *r, const int32_t *toks, int64_t n,
			double *logits, double *hidden)
{
	int64_t E = r->E, HD = r->HD, EQ = r->H * HD, EKV = r->HKV * HD, F = r->F;
	double *x = calloc((size_t)(n * E), sizeof(double));
	double *h = malloc((size_t)E * sizeof(double));
	double *q = malloc((size_t)(n * EQ) * sizeof(double));
	double *k = malloc((size_t)(n * EKV) * sizeof(double));
	double *v = malloc((size_t)(n * EKV) * sizeof(double));
	double *a = malloc((size_t)EQ * sizeof(double));
	double *o = malloc((size_t)E * sizeof(double));
	double *g = malloc((size_t)F * sizeof(double));
	double *u = malloc((size_t)F * sizeof(double));
	double *sc = malloc((size_t)n * sizeof(double));
	ref_cur_emulate = r->emulate;
	for (int64_t t = 0; t < n; t++)
		memcpy(x + t * E, r->tok_embd + (int64_t)toks[t] * E, (size_t)E * sizeof(double));
	for (int64_t l = 0; l < r->L; l++) {
		const struct ref_layer *y = &r->layers[l];
		for (int64_t t = 0; t < n; t++) {
			ref_rms(h, x + t * E, y->attn_norm, E, r->eps);
			ref_mv(q + t * EQ, y->wq, h, EQ, E, y->bq);
			ref_mv(k + t * EKV, y->wk, h, EKV, E, y->bk);
			ref_mv(v + t * EKV, y->wv, h, EKV, E, y->bv);
			ref_rope(r, q + t * EQ, r->H, t);
			ref_rope(r, k + t * EKV, r->HKV, t);
		}
		for (int64_t t = 0; t < n; t++) {
			for (int64_t hh = 0; hh < r->H; hh++) {
				int64_t kv = hh / (r->H / r->HKV);
				double mx = -INFINITY, sum = 0;
				for (int64_t s = 0; s <= t; s++) {
					double d = 0;
					for (int64_t i = 0; i < HD; i++)
						d += q[t * EQ + hh * HD + i] * k[s * EKV + kv * HD + i];
					sc[s] = d / sqrt((double)HD);
					if (sc[s] > mx)
						mx = sc[s];
				}
				for (int64_t s = 0; s <= t; s++)
					sum += (sc[s] = exp(sc[s] - mx));
				for (int64_t i = 0; i < HD; i++) {
					double acc = 0;
					for (int64_t s = 0; s <= t; s++)
						acc += sc[s] / sum * v[s * EKV + kv * HD + i];
					a[hh * HD + i] = acc;
				}
			}
			ref_mv(o, y->wo, a, E, EQ, NULL);
			for (int64_t i = 0; i < E; i++)
				x[t * E + i] += o[i];
		}
		for (int64_t t = 0; t < n; t++) {
			ref_rms(h, x + t * E, y->ffn_norm, E, r->eps);
			ref_mv(g, y->wg, h, F, E, NULL);
			ref_mv(u, y->wu, h, F, E, NULL);
			for (int64_t i = 0; i < F; i++)
				g[i] = g[i] / (1.0 + exp(-g[i])) * u[i];
			ref_mv(o, y->wd, g, E, F, NULL);
			for (int64_t i = 0; i < E; i++)
				x[t * E + i] += o[i];
		}
	}
	for (int64_t t = 0; t < n; t++) {
		ref_rms(h, x + t * E, r->out_norm, E, r->eps);
		if (hidden)
			memcpy(hidden + t * E, h, (size_t)E * sizeof(double));
		if (logits)
			ref_mv(logits + t * r->V,
			       r->output.d ? r->output : (struct ref_mat){ r->tok_embd, r->tok_type },
			       h, r->V, E, NULL);
	}
	free(x); free(h); free(q); free(k); free(v); free(a); free(o); free(g); free(u); free(sc);
}

#endif /* REF_FORWARD_H */
