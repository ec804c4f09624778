// Vectorised inner loops of the CPU back end.
//
// Written with GCC/Clang vector extensions on 64-byte vectors: the compiler
// maps one vector to a zmm register in the AVX-512 clone, two ymm in the AVX2
// clone and four xmm in the baseline; simd.h has the clone list.
#include "cpu_kernels.h"
#include "simd.h"

#include <cstring>
#include <type_traits>

namespace gan_kernels {
namespace cpu {
namespace {

constexpr int kVecBytes = 64;
typedef float vfloat __attribute__((vector_size(kVecBytes)));
typedef double vdouble __attribute__((vector_size(kVecBytes)));

template <typename A>
struct Vec;
template <>
struct Vec<float> {
  using type = vfloat;
};
template <>
struct Vec<double> {
  using type = vdouble;
};

template <typename T>
constexpr int lanes() {
  return kVecBytes / static_cast<int>(sizeof(acc_t<T>));
}

template <typename T, typename V = typename Vec<acc_t<T>>::type>
GK_INLINE V vload(const T* p) {
  V v;
  if constexpr (std::is_same_v<T, acc_t<T>>) {
    std::memcpy(&v, p, sizeof(V));
  } else {
    acc_t<T> tmp[lanes<T>()];
    for (int l = 0; l < lanes<T>(); ++l) tmp[l] = static_cast<acc_t<T>>(p[l]);
    std::memcpy(&v, tmp, sizeof(V));
  }
  return v;
}

template <typename T, typename V>
GK_INLINE void vstore(T* p, V v) {
  if constexpr (std::is_same_v<T, acc_t<T>>) {
    std::memcpy(p, &v, sizeof(V));
  } else {
    acc_t<T> tmp[lanes<T>()];
    std::memcpy(tmp, &v, sizeof(V));
    for (int l = 0; l < lanes<T>(); ++l) p[l] = static_cast<T>(tmp[l]);
  }
}

template <typename T>
GK_INLINE acc_t<T> sumsq_impl(const T* x, int64_t n) {
  using A = acc_t<T>;
  using V = typename Vec<A>::type;
  constexpr int L = lanes<T>();
  // Two independent accumulators hide the add latency; the loop is bound by
  // memory long before by arithmetic.
  V s0 = {}, s1 = {};
  int64_t i = 0;
  for (; i + 2 * L <= n; i += 2 * L) {
    V a = vload<T>(x + i), b = vload<T>(x + i + L);
    s0 += a * a;
    s1 += b * b;
  }
  for (; i + L <= n; i += L) {
    V a = vload<T>(x + i);
    s0 += a * a;
  }
  s0 += s1;
  A lane[L];
  std::memcpy(lane, &s0, sizeof(V));
  // Tail into the lanes in order, then a fixed pairwise tree over the lanes.
  for (int l = 0; i < n; ++i, ++l) {
    A v = static_cast<A>(x[i]);
    lane[l] += v * v;
  }
  for (int w = L / 2; w > 0; w /= 2) {
    for (int l = 0; l < w; ++l) lane[l] += lane[l + w];
  }
  return lane[0];
}

template <typename T>
GK_INLINE void scale_impl(const T* x, T* out, acc_t<T> k, int64_t n) {
  using A = acc_t<T>;
  using V = typename Vec<A>::type;
  constexpr int L = lanes<T>();
  const V kv = V{} + k;
  int64_t i = 0;
  for (; i + L <= n; i += L) vstore(out + i, kv * vload<T>(x + i));
  for (; i < n; ++i) out[i] = static_cast<T>(k * static_cast<A>(x[i]));
}

template <typename T>
GK_INLINE void lerp_impl(const T* r, const T* f, T* out, acc_t<T> a, acc_t<T> b, int64_t n) {
  using A = acc_t<T>;
  using V = typename Vec<A>::type;
  constexpr int L = lanes<T>();
  const V av = V{} + a, bv = V{} + b;
  int64_t i = 0;
  for (; i + L <= n; i += L) vstore(out + i, av * vload<T>(r + i) + bv * vload<T>(f + i));
  for (; i < n; ++i) out[i] = static_cast<T>(a * static_cast<A>(r[i]) + b * static_cast<A>(f[i]));
}

template <typename T>
GK_INLINE void scale2_impl(const T* g, T* dr, T* df, acc_t<T> a, acc_t<T> b, int64_t n) {
  using A = acc_t<T>;
  using V = typename Vec<A>::type;
  constexpr int L = lanes<T>();
  const V av = V{} + a, bv = V{} + b;
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    V v = vload<T>(g + i);
    vstore(dr + i, av * v);
    vstore(df + i, bv * v);
  }
  for (; i < n; ++i) {
    A v = static_cast<A>(g[i]);
    dr[i] = static_cast<T>(a * v);
    df[i] = static_cast<T>(b * v);
  }
}

// sum |a_i - b_i| over n elements: two vectors of lanes in acc_t<T>, then the
// lanes added in a fixed order in double (the feature-matching partial sum).
template <typename T>
GK_INLINE double abs_diff_sum_impl(const T* a, const T* b, int64_t n) {
  using A = acc_t<T>;
  using V = typename Vec<A>::type;
  constexpr int L = lanes<T>();
  V s0 = {}, s1 = {};
  int64_t i = 0;
  for (; i + 2 * L <= n; i += 2 * L) {
    V d0 = vload<T>(a + i) - vload<T>(b + i);
    V d1 = vload<T>(a + i + L) - vload<T>(b + i + L);
    s0 += d0 < V{} ? -d0 : d0;
    s1 += d1 < V{} ? -d1 : d1;
  }
  for (; i + L <= n; i += L) {
    V d = vload<T>(a + i) - vload<T>(b + i);
    s0 += d < V{} ? -d : d;
  }
  s0 += s1;  // fewer than L elements are left for the lanes below
  A lane[L];
  std::memcpy(lane, &s0, sizeof(V));
  for (int l = 0; i < n; ++i, ++l) {
    const A d = static_cast<A>(a[i]) - static_cast<A>(b[i]);
    lane[l] += d < A(0) ? -d : d;
  }
  double total = 0;
  for (int l = 0; l < L; ++l) total += static_cast<double>(lane[l]);
  return total;
}

// dr = s * sign(r - f) and df = -dr (either may be null): sign(0) = 0 and a
// NaN difference gives NaN, as torch.sign does; selects, no branches (random
// signs would mispredict every other one).
template <typename T>
GK_INLINE void sign_scale_impl(const T* r, const T* f, T* dr, T* df, acc_t<T> s, int64_t n) {
  using A = acc_t<T>;
  using V = typename Vec<A>::type;
  constexpr int L = lanes<T>();
  const V pos = V{} + s, neg = V{} - s, zero = V{};
  auto grad = [&](V d) {
    V g = d > zero ? pos : (d < zero ? neg : zero * s);
    return d != d ? d * s : g;
  };
  int64_t i = 0;
  for (; i + L <= n; i += L) {
    const V g = grad(vload<T>(r + i) - vload<T>(f + i));
    if (dr) vstore(dr + i, g);
    if (df) vstore(df + i, -g);
  }
  for (; i < n; ++i) {
    const A d = static_cast<A>(r[i]) - static_cast<A>(f[i]);
    const A g = d > A(0) ? s : (d < A(0) ? -s : A(0) * s);
    const A v = d != d ? d * s : g;
    if (dr) dr[i] = static_cast<T>(v);
    if (df) df[i] = static_cast<T>(-v);
  }
}

}  // namespace

#define GK_DEFINE_FOR(T)                                                                        \
  GK_CLONES acc_t<T> sumsq(const T* x, int64_t n) { return sumsq_impl(x, n); }                  \
  GK_CLONES void scale(const T* x, T* out, acc_t<T> k, int64_t n) { scale_impl(x, out, k, n); } \
  GK_CLONES GK_NO_CONTRACT void lerp(const T* r, const T* f, T* out, acc_t<T> a, acc_t<T> b,    \
                                     int64_t n) {                                               \
    lerp_impl(r, f, out, a, b, n);                                                              \
  }                                                                                             \
  GK_CLONES void scale2(const T* g, T* dr, T* df, acc_t<T> a, acc_t<T> b, int64_t n) {          \
    scale2_impl(g, dr, df, a, b, n);                                                            \
  }                                                                                             \
  GK_CLONES double abs_diff_sum(const T* a, const T* b, int64_t n) { return abs_diff_sum_impl(a, b, n); } \
  GK_CLONES void sign_scale(const T* r, const T* f, T* dr, T* df, acc_t<T> s, int64_t n) {      \
    sign_scale_impl(r, f, dr, df, s, n);                                                        \
  }

GK_DEFINE_FOR(float)
GK_DEFINE_FOR(double)
GK_DEFINE_FOR(c10::Half)
GK_DEFINE_FOR(c10::BFloat16)

#undef GK_DEFINE_FOR

}  // namespace cpu
}  // namespace gan_kernels
