#include "rapport/connectors/store_simulator.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <new>

#include "rapport/engine/json_writer.h"

// Determinism across machines rests on IEEE-754 doubles with every operation
// rounded on its own: no fused multiply-add. GCC does not contract in ISO mode
// (-std=c++20, which CMake uses); clang needs to be told.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

namespace rapport::connectors {
namespace {

// --- Random numbers -----------------------------------------------------------

uint64_t Mix64(uint64_t z) {  // splitmix64's finalizer: a bijection
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// xoshiro256** (Blackman & Vigna), seeded through splitmix64.
class Rng {
 public:
  Rng() = default;
  explicit Rng(uint64_t seed) {
    for (uint64_t& w : s_) {
      seed += 0x9E3779B97F4A7C15ull;
      w = Mix64(seed);
    }
  }

  uint64_t Next() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, 1), a multiple of 2^-53.
  double Uniform() { return static_cast<double>(Next() >> 11) * 0x1.0p-53; }

  // Uniform in [0, n), unbiased; n > 0.
  uint64_t Below(uint64_t n) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do {
      x = Next();
    } while (x >= limit);
    return x % n;
  }

  // Uniform in [lo, hi], like Python's randint.
  int64_t Between(int64_t lo, int64_t hi) { return lo + static_cast<int64_t>(Below(static_cast<uint64_t>(hi - lo) + 1)); }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4] = {};
};

// Independent streams: one per customer, one for the malformed lines.
constexpr uint64_t kCustomerStream = 0x43555354u;  // "CUST"
constexpr uint64_t kBadLineStream = 0x4241444Cu;   // "BADL"

Rng StreamRng(uint64_t seed, uint64_t stream, uint64_t index) {
  return Rng(Mix64(Mix64(seed ^ Mix64(stream)) ^ index));
}

// --- Portable log and exp -------------------------------------------------------
// libm's log/exp may differ in the last bit between C libraries; these use only
// +, -, *, / and exact scaling (frexp, ldexp, floor), so they give the same
// bits everywhere. Accuracy is a few ulp, plenty for a simulation.

constexpr double kLn2Hi = 6.93147180369123816490e-01;  // fdlibm's split: k * kLn2Hi is exact for |k| < 2^11
constexpr double kLn2Lo = 1.90821492927058770002e-10;
constexpr double kInvLn2 = 1.44269504088896338700e+00;
constexpr double kSqrtHalf = 0.70710678118654752440;

// Natural log for a finite x > 0.
double Log(double x) {
  int e;
  double m = std::frexp(x, &e);  // x = m * 2^e, m in [0.5, 1)
  if (m < kSqrtHalf) {
    m *= 2;
    --e;
  }
  // log(m) = 2 atanh(z) = 2 (z + z^3/3 + z^5/5 + ...), |z| <= 0.1716.
  const double z = (m - 1) / (m + 1);
  const double z2 = z * z;
  double s = 1.0 / 25;
  for (int k = 11; k >= 0; --k) s = s * z2 + 1.0 / (2 * k + 1);
  const double k = e;
  return k * kLn2Hi + (2 * z * s + k * kLn2Lo);
}

// e^x for |x| < 700.
double Exp(double x) {
  const double k = std::floor(x * kInvLn2 + 0.5);
  const double r = (x - k * kLn2Hi) - k * kLn2Lo;  // |r| <= 0.35
  double p = 1.0;
  for (int n = 16; n >= 1; --n) p = 1.0 + p * r / n;  // Taylor series, Horner form
  return std::ldexp(p, static_cast<int>(k));
}

// Exponential with mean 1, i.e. Python's expovariate(1).
double Exponential(Rng& rng) { return -Log(1.0 - rng.Uniform()); }

// Standard normal, Marsaglia's polar method (sqrt is exact in IEEE-754).
double Normal(Rng& rng) {
  double u, s;
  do {
    u = 2 * rng.Uniform() - 1;
    const double v = 2 * rng.Uniform() - 1;
    s = u * u + v * v;
  } while (s >= 1 || s == 0);
  return u * std::sqrt(-2 * Log(s) / s);
}

// --- The store ------------------------------------------------------------------

struct Profile {
  double share;
  double visits_per_day;  // while active
  double p_buy;           // per visit
  double p_gap;           // per visit: a lapse of weeks follows
  double gap_days;        // mean lapse
  bool refers;
};

constexpr Profile kProfiles[] = {
    {0.45, 0.15, 0.00, 0.10, 45, false},  // browser
    {0.25, 0.20, 0.06, 0.08, 50, false},  // one_time
    {0.22, 0.35, 0.18, 0.05, 40, false},  // repeat
    {0.08, 0.60, 0.25, 0.02, 35, true},   // advocate
};
constexpr int kProfileCount = sizeof(kProfiles) / sizeof(kProfiles[0]);

constexpr std::string_view kPages[] = {"/", "/shoes", "/bags", "/sale", "/new", "/account", "/blog/care-guide"};
constexpr int kPageCount = sizeof(kPages) / sizeof(kPages[0]);
constexpr int kSkuCount = 200;

constexpr double kCartProbability = 0.2;
constexpr double kReferralProbability = 0.3;
constexpr uint32_t kReferralMinPurchases = 3;
constexpr double kNeverComesBackProbability = 0.5;
constexpr double kAmountMu = 3.6;
constexpr double kAmountSigma = 0.7;
constexpr uint32_t kMaxAmountCents = 200000;

enum Kind : uint8_t { kVisit, kCart, kPurchase, kReferral };

// One event, compact, in the bucket of its time window. Events are ordered by
// (ts, customer), which is unique because a customer's events are strictly
// increasing in time; within a window that is the order of `key`.
struct Row {
  uint64_t key;     // (ts - window start) << 32 | customer index
  uint32_t number;  // purchase: its 1-based number; referral: purchases so far
  uint32_t cents;   // purchase amount
  uint16_t sku;
  uint8_t kind;
  uint8_t page;
};
static_assert(sizeof(Row) == 24);

struct RowBefore {
  bool operator()(const Row& a, const Row& b) const { return a.key < b.key; }
};

struct SimEvent {
  int64_t ts;
  uint32_t customer;
  Row row;
};

struct Customer {
  Rng rng;
  int64_t t;  // time of the next visit
  uint32_t purchases;
  uint8_t profile;
};

Customer NewCustomer(uint64_t seed, uint32_t index, int64_t start, int64_t span) {
  Customer c;
  c.rng = StreamRng(seed, kCustomerStream, index);
  c.purchases = 0;
  double x = c.rng.Uniform();
  c.profile = kProfileCount - 1;
  for (int i = 0; i < kProfileCount; ++i) {
    if (x < kProfiles[i].share) {
      c.profile = static_cast<uint8_t>(i);
      break;
    }
    x -= kProfiles[i].share;
  }
  // First visit somewhere in the first 80% of the period.
  c.t = start + static_cast<int64_t>(c.rng.Uniform() * static_cast<double>(span) * 0.8);
  return c;
}

// --- Formatting -------------------------------------------------------------------

char* Put(char* p, std::string_view s) {
  std::memcpy(p, s.data(), s.size());
  return p + s.size();
}

char* PutUint(char* p, uint64_t v) {
  char tmp[20];
  int n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) *p++ = tmp[--n];
  return p;
}

char* PutInt(char* p, int64_t v) {
  if (v < 0) {
    *p++ = '-';
    return PutUint(p, 0 - static_cast<uint64_t>(v));
  }
  return PutUint(p, static_cast<uint64_t>(v));
}

// Cents as Python prints the float round(x, 2): "120.0", "36.6", "12.05".
char* PutAmount(char* p, uint32_t cents) {
  p = PutUint(p, cents / 100);
  *p++ = '.';
  const uint32_t f = cents % 100;
  *p++ = static_cast<char>('0' + f / 10);
  if (f % 10 != 0) *p++ = static_cast<char>('0' + f % 10);
  return p;
}

}  // namespace

// --- Options ------------------------------------------------------------------------

Status ValidateStoreSimulatorOptions(const StoreSimulatorOptions& o) {
  static constexpr int64_t kMinMs = -62135596800000;  // 0001-01-01T00:00:00Z
  static constexpr int64_t kEndMs = 253402300800000;  // 10000-01-01T00:00:00Z
  if (o.customers == 0 || o.customers > kMaxSimulatedCustomers) {
    return Status::InvalidArgument("customers must be between 1 and " + std::to_string(kMaxSimulatedCustomers) +
                                   ", got " + std::to_string(o.customers));
  }
  if (o.start.ms < kMinMs || o.start.ms >= kEndMs) {
    return Status::InvalidArgument("start must be within years 0001-9999");
  }
  if (o.days <= 0 || o.days > (kEndMs - o.start.ms) / kMsPerDay) {
    return Status::InvalidArgument("days must be positive and the period must end by 9999-12-31, got " +
                                   std::to_string(o.days));
  }
  if (!(o.bad_rate >= 0.0 && o.bad_rate <= 1.0)) {
    return Status::InvalidArgument("bad_rate must be between 0 and 1, got " + std::to_string(o.bad_rate));
  }
  if (o.id_prefix.size() > kMaxIdPrefixBytes) {
    return Status::InvalidArgument("id_prefix is longer than " + std::to_string(kMaxIdPrefixBytes) + " bytes");
  }
  return Status::Ok();
}

const std::vector<std::string>& MalformedStoreLines() {
  static const std::vector<std::string> kLines = [] {
    std::vector<std::string> v = {
        "{not json",
        "",
        "[1,2,3]",
        R"({"type":"visit","ts":"2026-01-01T00:00:00.000Z"})",
        R"({"type":"purchase","customer_id":"c-x","ts":"yesterday","amount":5})",
        R"({"type":"purchase","customer_id":"c-x","ts":"2026-01-01T00:00:00.000Z","amount":"lots"})",
        R"({"type":42,"customer_id":"c-x","ts":"2026-01-01T00:00:00.000Z"})",
        R"({"type":"visit","customer_id":"","ts":"2026-01-01T00:00:00.000Z"})",
        R"({"type":"visit","customer_id":"c-x","ts":"2026-01-01T00:00:00.000Z")",
        R"({"type":"visit","customer_id":"c-x","ts":"2026-01-01T00:00:00.000Z","page":")" + std::string(70000, 'x') +
            R"("})",
        std::string("\x00\x01\x02garbage", 10),
        R"({"type":"visit","customer_id":{"nested":true},"ts":"2026-01-01T00:00:00.000Z"})",
    };
    return v;
  }();
  return kLines;
}

// --- The simulator ------------------------------------------------------------------
//
// Time is cut into windows (an hour, or 1/65536 of a very long period).
// Customers wait in the bucket of the window of their next visit; processing a window runs each of its customers' visits up to the
// window's end, dropping the resulting events into the buckets of their own
// windows (a purchase or referral can land days later). Once a window has run,
// its event bucket is complete: no later visit makes an earlier event. It is
// sorted and handed out. Each customer has its own random stream, so the
// result does not depend on the order in which customers are processed.

struct StoreSimulator::Impl {
  StoreSimulatorOptions options;
  int64_t start = 0;
  int64_t end = 0;
  int64_t window_ms = 0;
  size_t window_count = 0;
  size_t next_window = 0;
  std::vector<Customer> customers;                      // by index
  std::vector<std::vector<uint32_t>> customers_by_window;  // indices, by window of the next visit
  std::vector<std::vector<Row>> rows_by_window;
  std::vector<Row> current;  // the sorted events of the window being handed out
  std::vector<Row> scratch;  // for sorting
  size_t pos = 0;
  int64_t current_start = 0;  // its window's start

  Rng bad_rng;
  bool has_pending = false;  // a malformed line was handed out; this row follows
  SimEvent pending{};

  std::string escaped_prefix;
  std::string line;  // the formatted line
  std::string key;   // the customer id of the line
  bool have_day = false;
  int64_t day_ms = 0;  // the midnight whose date is in day_text
  char day_text[kRfc3339Length] = {};
  GenerateStats stats;
  Status status;

  void Init(const StoreSimulatorOptions& o) {
    options = o;
    start = o.start.ms;
    end = start + o.days * kMsPerDay;
    const int64_t span = end - start;
    window_ms = std::max<int64_t>(kMsPerHour, (span + 65535) / 65536);  // < 2^32 for Row::key
    window_count = static_cast<size_t>((span + window_ms - 1) / window_ms);
    customers_by_window.resize(window_count);
    rows_by_window.resize(window_count);
    bad_rng = StreamRng(o.seed, kBadLineStream, 0);
    JsonWriter::AppendEscaped(&escaped_prefix, o.id_prefix);
    line.resize(MaxEventBytes());
    key.reserve(o.id_prefix.size() + 10);
    stats.customers = o.customers;

    const uint32_t n = static_cast<uint32_t>(o.customers);
    customers.resize(n);
    std::vector<size_t> counts(window_count, 0);
    for (uint32_t i = 0; i < n; ++i) {
      customers[i] = NewCustomer(o.seed, i, start, span);
      ++counts[WindowOf(customers[i].t)];
    }
    for (size_t w = 0; w < window_count; ++w) customers_by_window[w].reserve(counts[w]);
    for (uint32_t i = 0; i < n; ++i) customers_by_window[WindowOf(customers[i].t)].push_back(i);
  }

  size_t WindowOf(int64_t t) const { return static_cast<size_t>((t - start) / window_ms); }
  int64_t WindowStart(size_t w) const { return start + static_cast<int64_t>(w) * window_ms; }

  void Emit(int64_t ts, uint32_t customer, Kind kind, uint8_t page, uint16_t sku, uint32_t number, uint32_t cents) {
    if (ts >= end) return;
    const size_t w = WindowOf(ts);
    const uint64_t offset = static_cast<uint64_t>(ts - WindowStart(w));
    rows_by_window[w].push_back(Row{offset << 32 | customer, number, cents, sku, kind, page});
  }

  // One visit and what may follow it: a cart, a purchase, a referral, a
  // lapse. Returns false when the customer lapses and never comes back.
  bool Visit(Customer& c, uint32_t index) {
    const Profile& p = kProfiles[c.profile];
    Rng& rng = c.rng;
    int64_t t = c.t;
    Emit(t, index, kVisit, static_cast<uint8_t>(rng.Below(kPageCount)), 0, 0, 0);
    if (rng.Uniform() < kCartProbability) {
      t += rng.Between(5000, 300000);
      Emit(t, index, kCart, 0, static_cast<uint16_t>(rng.Below(kSkuCount)), 0, 0);
    }
    if (rng.Uniform() < p.p_buy) {
      t += rng.Between(30000, 1800000);
      ++c.purchases;
      const double amount = std::min(2000.0, Exp(kAmountMu + kAmountSigma * Normal(rng)));
      uint32_t cents = static_cast<uint32_t>(amount * 100 + 0.5);
      cents = std::clamp<uint32_t>(cents, 1, kMaxAmountCents);  // never 0.0
      Emit(t, index, kPurchase, 0, 0, c.purchases, cents);
      if (p.refers && c.purchases >= kReferralMinPurchases && rng.Uniform() < kReferralProbability) {
        t += rng.Between(kMsPerDay / 4, 5 * kMsPerDay);
        Emit(t, index, kReferral, 0, 0, c.purchases, 0);
      }
    }
    if (rng.Uniform() < p.p_gap) {
      t += static_cast<int64_t>(Exponential(rng) * p.gap_days * static_cast<double>(kMsPerDay)) + kMsPerDay;
      if (rng.Uniform() < kNeverComesBackProbability) return false;
    }
    t += static_cast<int64_t>(Exponential(rng) / p.visits_per_day * static_cast<double>(kMsPerDay)) + kMsPerMinute;
    c.t = t;
    return true;
  }

  void RunWindow(size_t w) {
    const int64_t w_end = std::min(end, start + static_cast<int64_t>(w + 1) * window_ms);
    std::vector<uint32_t> batch = std::move(customers_by_window[w]);
    customers_by_window[w] = std::vector<uint32_t>();
    constexpr size_t kAhead = 8;
    for (size_t i = 0; i < batch.size(); ++i) {
      if (i + kAhead < batch.size()) __builtin_prefetch(&customers[batch[i + kAhead]]);
      Customer& c = customers[batch[i]];
      bool active = true;
      while (active && c.t < w_end) active = Visit(c, batch[i]);
      if (active && c.t < end) customers_by_window[WindowOf(c.t)].push_back(batch[i]);
    }
    current = std::move(rows_by_window[w]);
    rows_by_window[w] = std::vector<Row>();
    SortRows(&current);
    pos = 0;
    current_start = WindowStart(w);
  }

  // Sorts by key: an LSD radix sort on the time offset (stable, so equal
  // offsets keep their order), then insertion sort puts the rare equal
  // offsets in customer order.
  void SortRows(std::vector<Row>* rows) {
    const size_t n = rows->size();
    if (n < 1024) {
      std::sort(rows->begin(), rows->end(), RowBefore());
      return;
    }
    constexpr int kBits = 11;
    constexpr size_t kBuckets = size_t{1} << kBits;
    const int offset_bits = std::bit_width(static_cast<uint64_t>(window_ms - 1));
    scratch.resize(n);
    for (int shift = 32; shift < 32 + offset_bits; shift += kBits) {
      size_t counts[kBuckets] = {};
      for (const Row& r : *rows) ++counts[(r.key >> shift) & (kBuckets - 1)];
      size_t sum = 0;
      for (size_t& c : counts) {
        const size_t k = c;
        c = sum;
        sum += k;
      }
      for (const Row& r : *rows) scratch[counts[(r.key >> shift) & (kBuckets - 1)]++] = r;
      rows->swap(scratch);
    }
    Row* const a = rows->data();
    for (size_t i = 1; i < n; ++i) {
      if (a[i].key >= a[i - 1].key) continue;
      const Row r = a[i];
      size_t j = i;
      for (; j > 0 && a[j - 1].key > r.key; --j) a[j] = a[j - 1];
      a[j] = r;
    }
  }

  bool NextRow(SimEvent* e) {
    while (pos == current.size()) {
      if (next_window == window_count) {
        current = std::vector<Row>();
        pos = 0;
        return false;
      }
      RunWindow(next_window++);
    }
    const Row& r = current[pos++];
    e->ts = current_start + static_cast<int64_t>(r.key >> 32);
    e->customer = static_cast<uint32_t>(r.key);
    e->row = r;
    return true;
  }

  // Room needed by Format(): fixed text, three ids, three numbers, an amount.
  size_t MaxEventBytes() const { return 256 + 3 * escaped_prefix.size(); }

  // Writes the event's line, without "\n", at p; returns its end.
  char* Format(const SimEvent& e, char* p) {
    const Row& r = e.row;
    p = Put(p, R"({"event_id":"e-)");
    p = PutUint(p, stats.events);  // counted by Advance()
    static constexpr std::string_view kTypes[] = {R"(","type":"visit","customer_id":")",
                                                  R"(","type":"cart","customer_id":")",
                                                  R"(","type":"purchase","customer_id":")",
                                                  R"(","type":"referral","customer_id":")"};
    p = Put(p, kTypes[r.kind]);
    char* const id = p;
    p = Put(p, escaped_prefix);
    p = PutUint(p, e.customer);
    const std::string_view cid(id, static_cast<size_t>(p - id));
    if (options.epoch_ms) {
      p = Put(p, R"(","ts":)");
      p = PutInt(p, e.ts);
    } else {
      p = Put(p, R"(","ts":")");
      p = PutRfc3339(p, e.ts);
      *p++ = '"';
    }
    switch (r.kind) {
      case kVisit:
        p = Put(p, R"(,"page":")");
        p = Put(p, kPages[r.page]);
        p = Put(p, R"("})");
        break;
      case kCart:
        p = Put(p, R"(,"sku":"sku-)");
        *p++ = static_cast<char>('0' + r.sku / 100);
        *p++ = static_cast<char>('0' + r.sku / 10 % 10);
        *p++ = static_cast<char>('0' + r.sku % 10);
        p = Put(p, R"("})");
        break;
      case kPurchase:
        p = Put(p, R"(,"order_id":"o-)");
        p = Put(p, cid);
        *p++ = '-';
        p = PutUint(p, r.number);
        p = Put(p, R"(","amount":)");
        p = PutAmount(p, r.cents);
        p = Put(p, R"(,"currency":"EUR"})");
        break;
      case kReferral:
        p = Put(p, R"(,"referred_customer_id":"r-)");
        p = Put(p, cid);
        *p++ = '-';
        p = PutUint(p, r.number);
        p = Put(p, R"("})");
        break;
    }
    return p;
  }

  // FormatRfc3339, with the date computed once a day: events come in time order.
  char* PutRfc3339(char* p, int64_t ts) {
    int64_t ms = ts - day_ms;
    if (!have_day || ms < 0 || ms >= kMsPerDay) {
      have_day = true;
      day_ms = ts - ((ts % kMsPerDay) + kMsPerDay) % kMsPerDay;
      FormatRfc3339(EventTime{day_ms}, day_text);
      ms = ts - day_ms;
    }
    std::memcpy(p, day_text, 11);  // "YYYY-MM-DDT"
    auto two = [](char* q, int64_t v) {
      q[0] = static_cast<char>('0' + v / 10);
      q[1] = static_cast<char>('0' + v % 10);
    };
    two(p + 11, ms / kMsPerHour);
    p[13] = ':';
    two(p + 14, ms / kMsPerMinute % 60);
    p[16] = ':';
    two(p + 17, ms / kMsPerSecond % 60);
    p[19] = '.';
    p[20] = static_cast<char>('0' + ms / 100 % 10);
    two(p + 21, ms % 100);
    p[23] = 'Z';
    return p + kRfc3339Length;
  }

  // The next output line: *bad is set for a malformed line (then *e is the
  // event that follows it), else null and *e is the event. False at the end.
  bool Advance(SimEvent* e, const std::string** bad) {
    *bad = nullptr;
    if (has_pending) {
      has_pending = false;
      *e = pending;
    } else {
      if (!NextRow(e)) return false;
      if (options.bad_rate > 0 && bad_rng.Uniform() < options.bad_rate) {
        const auto& lines = MalformedStoreLines();
        *bad = &lines[bad_rng.Below(lines.size())];
        pending = *e;
        has_pending = true;
        ++stats.malformed;
        stats.bytes += (*bad)->size() + 1;
        return true;
      }
    }
    ++stats.events;
    return true;
  }

  bool Next(SimulatedLine* out) {
    SimEvent e;
    const std::string* bad;
    if (!Advance(&e, &bad)) return false;
    out->ts = EventTime{e.ts};
    if (bad != nullptr) {
      out->text = *bad;
      out->malformed = true;
      out->customer_id = {};
      return true;
    }
    char* const end = Format(e, line.data());
    out->text = std::string_view(line.data(), static_cast<size_t>(end - line.data()));
    out->malformed = false;
    key.assign(options.id_prefix);
    char digits[20];
    key.append(digits, static_cast<size_t>(PutUint(digits, e.customer) - digits));
    out->customer_id = key;
    stats.bytes += out->text.size() + 1;
    return true;
  }

  Status WriteAll(std::FILE* out) {
    constexpr size_t kFlushBytes = 1 << 20;
    std::unique_ptr<char[]> buffer(new char[kFlushBytes + MaxEventBytes() + 1]);
    char* const begin = buffer.get();
    char* p = begin;
    auto flush = [&]() -> bool {
      const size_t n = static_cast<size_t>(p - begin);
      p = begin;
      return n == 0 || std::fwrite(begin, 1, n, out) == n;
    };
    auto write_error = [] { return Status::IoError(std::string("writing events: ") + std::strerror(errno)); };
    SimEvent e;
    const std::string* bad;
    while (Advance(&e, &bad)) {
      if (bad != nullptr) {
        if (!flush()) return write_error();
        if (std::fwrite(bad->data(), 1, bad->size(), out) != bad->size() || std::fputc('\n', out) == EOF) {
          return write_error();
        }
        continue;
      }
      char* const line_begin = p;
      p = Format(e, p);
      *p++ = '\n';
      stats.bytes += static_cast<uint64_t>(p - line_begin);
      if (static_cast<size_t>(p - begin) >= kFlushBytes && !flush()) return write_error();
    }
    if (!flush() || std::fflush(out) != 0 || std::ferror(out)) return write_error();
    return Status::Ok();
  }
};

namespace {
Status OutOfMemory(const StoreSimulatorOptions& options) {
  return Status::InvalidArgument("out of memory simulating " + std::to_string(options.customers) + " customers");
}
}  // namespace

StoreSimulator::StoreSimulator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StoreSimulator::~StoreSimulator() = default;

Result<std::unique_ptr<StoreSimulator>> StoreSimulator::Create(const StoreSimulatorOptions& options) {
  if (Status s = ValidateStoreSimulatorOptions(options); !s.ok()) return s;
  try {
    auto impl = std::make_unique<Impl>();
    impl->Init(options);
    return std::unique_ptr<StoreSimulator>(new StoreSimulator(std::move(impl)));
  } catch (const std::bad_alloc&) {
    return OutOfMemory(options);
  }
}

bool StoreSimulator::Next(SimulatedLine* line) {
  if (!impl_->status.ok()) return false;
  try {
    return impl_->Next(line);
  } catch (const std::bad_alloc&) {
    impl_->status = OutOfMemory(impl_->options);
    return false;
  }
}

const GenerateStats& StoreSimulator::stats() const { return impl_->stats; }
const Status& StoreSimulator::status() const { return impl_->status; }

Status WriteStoreEvents(const StoreSimulatorOptions& options, std::FILE* out, GenerateStats* stats) {
  if (Status s = ValidateStoreSimulatorOptions(options); !s.ok()) return s;
  Status status;
  StoreSimulator::Impl impl;
  try {
    impl.Init(options);
    status = impl.WriteAll(out);
  } catch (const std::bad_alloc&) {
    status = OutOfMemory(options);
  }
  if (stats != nullptr) *stats = impl.stats;
  return status;
}

}  // namespace rapport::connectors
