/*
 * test_ops.c: the small f32 operations of the forward pass (ops.h): the
 * SIMD versions agree with the scalar ones and with double-precision
 * formulas over a table of inputs (including SiLU's extremes, where the
 * vector exp clamps), RMSNorm, softmax and the rotary pairings.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "dify-edge-core/runtime/kernels.h"
#include "dify-edge-core/runtime/ops.h"

static float frand(uint64_t *s)
{
	*s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
	return (float)((double)(*s >> 40) / (double)(1ULL << 24)) * 2.0f - 1.0f;
}

static void test_silu(void **state)
{
	(void)state;
	static const float special[] = { 0.0f, -0.0f, 1.0f, -1.0f, 10.0f, -10.0f, 30.0f, -30.0f,
					 88.0f, -88.0f, 100.0f, -100.0f, 1e-8f, -1e-8f, 87.5f, -87.5f,
					 0.5f, -0.5f, 3.0f, -3.0f };
	enum { N = 1000 + 20 };
	float g[N], u[N], out[N];
	uint64_t s = 1;
	for (int i = 0; i < N; i++) {
		g[i] = i < 20 ? special[i] : frand(&s) * 12.0f;
		u[i] = i < 20 ? 1.0f : frand(&s);
	}
	for (int pass = 0; pass < 2; pass++) {
		enum kern_isa best = kern_isa();
		if (pass == 1 && kern_force_isa(KERN_ISA_SCALAR) != 0)
			fail();
		ops_silu_mul_to(out, g, u, N);
		for (int i = 0; i < N; i++) {
			double want = (double)g[i] / (1.0 + exp(-(double)g[i])) * u[i];
			double tol = 4e-7 * fabs(want) + 1e-30;
			if (!(fabs(out[i] - want) <= tol))
				print_message("silu(%g)*%g = %.9g, want %.9g (isa %s)\n", g[i], u[i], out[i], want,
					      kern_isa_name(kern_isa()));
			assert_true(fabs(out[i] - want) <= tol);
		}
		if (pass == 1)
			kern_force_isa(best);
	}
}

static void test_dot_axpy_attention(void **state)
{
	(void)state;
	enum { HD = 72, NP = 37 }; /* a head size that is not a multiple of 16 */
	float q[HD], k[NP * HD], v[NP * HD], out[2][HD], sc[NP];
	uint64_t s = 7;
	for (int i = 0; i < HD; i++)
		q[i] = frand(&s);
	for (int i = 0; i < NP * HD; i++) {
		k[i] = frand(&s);
		v[i] = frand(&s);
	}
	for (int pass = 0; pass < 2; pass++) {
		enum kern_isa best = kern_isa();
		if (pass == 1)
			assert_int_equal(kern_force_isa(KERN_ISA_SCALAR), 0);
		ops_attn_head(out[pass], q, k, v, HD, NP, HD, 0.125f, sc);
		if (pass == 1)
			kern_force_isa(best);
	}
	/* double reference */
	double sd[NP], mx = -INFINITY, sum = 0;
	for (int t = 0; t < NP; t++) {
		double d = 0;
		for (int i = 0; i < HD; i++)
			d += (double)q[i] * k[t * HD + i];
		sd[t] = d * 0.125;
		mx = fmax(mx, sd[t]);
	}
	for (int t = 0; t < NP; t++)
		sum += (sd[t] = exp(sd[t] - mx));
	for (int i = 0; i < HD; i++) {
		double want = 0;
		for (int t = 0; t < NP; t++)
			want += sd[t] / sum * v[t * HD + i];
		assert_true(fabs(out[0][i] - want) < 1e-5);
		assert_true(fabs(out[1][i] - want) < 1e-5);
	}
	for (int n = 0; n < 40; n++)
		assert_true(fabsf(ops_dot(q, k, n) - ops_dot(k, q, n)) < 1e-6f);
}

static void test_rmsnorm_softmax(void **state)
{
	(void)state;
	float x[5] = { 1, -2, 3, -4, 5 }, w[5] = { 1, 1, 2, 1, 0.5f }, o[5];
	ops_rmsnorm(o, x, w, 5, 0);
	double rms = sqrt((1 + 4 + 9 + 16 + 25) / 5.0);
	for (int i = 0; i < 5; i++)
		assert_true(fabs(o[i] - x[i] / rms * w[i]) < 1e-6);
	float sm[4] = { 1000, 1001, 999, -1e30f };
	ops_softmax(sm, 4);
	double e0 = exp(-1), e2 = exp(-2), z = e0 + 1 + e2;
	assert_true(fabs(sm[0] - e0 / z) < 1e-6 && fabs(sm[1] - 1 / z) < 1e-6 && sm[3] == 0);
}

/* Rotary: mode 0 rotates (0,1),(2,3); NeoX rotates (0,2),(1,3) for n_rot 4. */
static void test_rope_pairs(void **state)
{
	(void)state;
	float cs[4];
	ops_rope_table(cs, 3, 4, 10000.0f, 1.0f);
	assert_true(fabs(cs[0] - cos(3.0)) < 1e-6 && fabs(cs[1] - sin(3.0)) < 1e-6);
	assert_true(fabs(cs[2] - cos(3.0 / 100.0)) < 1e-6 && fabs(cs[3] - sin(3.0 / 100.0)) < 1e-6);
	static const struct {
		int neox;
		int a0, b0, a1, b1;
	} cases[] = { { 0, 0, 1, 2, 3 }, { 1, 0, 2, 1, 3 } };
	for (size_t c = 0; c < 2; c++) {
		float x[6] = { 1, 2, 3, 4, 5, 6 }; /* head 6, n_rot 4: dims 4, 5 untouched */
		ops_rope(x, 1, 6, 4, cs, cases[c].neox);
		float y[6] = { 1, 2, 3, 4, 5, 6 };
		int pa[2] = { cases[c].a0, cases[c].a1 }, pb[2] = { cases[c].b0, cases[c].b1 };
		for (int i = 0; i < 2; i++) {
			float x0 = y[pa[i]], x1 = y[pb[i]];
			assert_true(fabsf(x[pa[i]] - (x0 * cs[2 * i] - x1 * cs[2 * i + 1])) < 1e-6f);
			assert_true(fabsf(x[pb[i]] - (x0 * cs[2 * i + 1] + x1 * cs[2 * i])) < 1e-6f);
		}
		assert_true(x[4] == 5 && x[5] == 6);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_silu),
		cmocka_unit_test(test_dot_axpy_attention),
		cmocka_unit_test(test_rmsnorm_softmax),
		cmocka_unit_test(test_rope_pairs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
