// The webhook action output: one POST per action, through one keep-alive
// cpp-httplib client per output.
//
// Decisions worth knowing:
// - Records are POSTed one after another, in order; a record is retried until
//   it gets a 2xx before the next one is sent, so a receiver sees a customer's
//   actions in commit order (apart from redeliveries).
// - Every non-2xx answer and every transport error is retried: with exponential
//   back-off and full jitter (a uniform wait in [0, min(max_backoff,
//   initial_backoff * 2^n))), for up to retry_for counted from the record's
//   first failure; then Unavailable. A 4xx that will never change therefore
//   holds the outbox until someone fixes the receiver or the config.
// - Blocking: one request can take up to about 3 x timeout (connect, write and
//   read each have it); a record about retry_for plus one request. `stopping`
//   is checked before each request and every 50 ms of a back-off wait, not
//   during a request.
// - SIGPIPE: Debian's libcpp-httplib sends without MSG_NOSIGNAL, so a peer
//   closing mid-request would kill the process. Deliver() blocks SIGPIPE in the
//   calling thread and discards the ones it caused (EPIPE is then an ordinary
//   transport error), without touching process-wide signal handling.
// - URLs: http://host[:port][/path][?query], and https:// since Debian builds
//   httplib with OpenSSL (system CA store, certificates verified). No userinfo
//   (put credentials in `headers`), no fragment, no IPv6 literal. Describe()
//   leaves out the query, which often carries a token.
#include <httplib.h>
#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cctype>
#include <optional>
#include <random>
#include <thread>

#include "rapport/connectors/sinks.h"

namespace rapport::connectors {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kWaitSlice{50};

struct ParsedUrl {
  std::string scheme;  // "http" or "https"
  std::string host;
  int port = 0;
  std::string path;  // with the query, never empty
  std::string without_query;
};

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return std::tolower(c); });
  return out;
}

Result<ParsedUrl> ParseUrl(const std::string& url) {
  auto bad = [&](const std::string& why) { return Status::InvalidArgument("webhook url \"" + url + "\": " + why); };
  for (unsigned char c : url) {
    if (c <= 0x20 || c == 0x7f) return bad("contains a space or a control character");
  }
  ParsedUrl u;
  size_t sep = url.find("://");
  if (sep == std::string::npos) return bad("expected http://host[:port]/path");
  u.scheme = Lower(std::string_view(url).substr(0, sep));
  if (u.scheme != "http" && u.scheme != "https") return bad("the scheme must be http or https");
#ifndef CPPHTTPLIB_OPENSSL_SUPPORT
  if (u.scheme == "https") return bad("https needs cpp-httplib built with OpenSSL, and this one is not");
#endif
  std::string_view rest = std::string_view(url).substr(sep + 3);
  if (rest.find('#') != std::string_view::npos) return bad("a fragment (#...) is never sent; remove it");
  size_t end = rest.find_first_of("/?");
  std::string_view authority = rest.substr(0, end);
  std::string_view path = end == std::string_view::npos ? std::string_view() : rest.substr(end);
  if (authority.find('@') != std::string_view::npos) {
    return bad("credentials in the URL are not supported; put them in the sink's headers (Authorization)");
  }
  if (!authority.empty() && authority.front() == '[') return bad("IPv6 literal addresses are not supported");
  size_t colon = authority.find(':');
  std::string_view host = authority.substr(0, colon);
  if (host.empty()) return bad("the host is missing");
  for (unsigned char c : host) {
    if (!std::isalnum(c) && c != '-' && c != '.' && c != '_') return bad("the host has a character not allowed");
  }
  u.host = Lower(host);
  u.port = u.scheme == "https" ? 443 : 80;
  if (colon != std::string_view::npos) {
    std::string_view port = authority.substr(colon + 1);
    if (port.empty() || port.size() > 5 ||
        !std::all_of(port.begin(), port.end(), [](unsigned char c) { return std::isdigit(c); })) {
      return bad("the port must be a number from 1 to 65535");
    }
    u.port = std::stoi(std::string(port));
    if (u.port < 1 || u.port > 65535) return bad("the port must be a number from 1 to 65535");
  }
  u.path = path.empty() ? "/" : path.front() == '?' ? "/" + std::string(path) : std::string(path);
  u.without_query = u.scheme + "://" + u.host + ":" + std::to_string(u.port) + u.path.substr(0, u.path.find('?'));
  return u;
}

Status CheckHeaders(const std::map<std::string, std::string>& headers) {
  for (const auto& [name, value] : headers) {
    std::string what = "webhook header \"" + name + "\": ";
    if (name.empty()) return Status::InvalidArgument("webhook header: the name is empty");
    for (unsigned char c : name) {
      if (c <= 0x20 || c >= 0x7f || c == ':')
        return Status::InvalidArgument(what + "the name has a character not allowed");
    }
    std::string lower = Lower(name);
    if (lower == "content-type" || lower == "content-length" || lower == "host" || lower == "connection") {
      return Status::InvalidArgument(what + "set by the sink itself");
    }
    // CR or LF would let a value end the header and start another.
    if (value.find_first_of("\r\n") != std::string::npos)
      return Status::InvalidArgument(what + "the value has a line break");
  }
  return Status::Ok();
}

// Blocks SIGPIPE in this thread for its lifetime and discards the SIGPIPEs
// raised meanwhile (see the top of the file).
class ScopedSigpipeBlock {
 public:
  ScopedSigpipeBlock() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    was_pending_ = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1;
    blocked_ = pthread_sigmask(SIG_BLOCK, &pipe_, &old_) == 0;
  }
  ~ScopedSigpipeBlock() {
    if (!blocked_) return;
    if (!was_pending_) {
      const timespec zero{0, 0};
      while (sigtimedwait(&pipe_, nullptr, &zero) == SIGPIPE) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  ScopedSigpipeBlock(const ScopedSigpipeBlock&) = delete;
  ScopedSigpipeBlock& operator=(const ScopedSigpipeBlock&) = delete;

 private:
  sigset_t pipe_;
  sigset_t old_;
  bool was_pending_ = false;
  bool blocked_ = false;
};

class WebhookOutput final : public ActionOutput {
 public:
  WebhookOutput(ParsedUrl url, const WebhookOutputOptions& options)
      : url_(std::move(url)),
        options_(options),
        client_(url_.scheme + "://" + url_.host + ":" + std::to_string(url_.port)),
        rng_(std::random_device{}()) {
    for (const auto& [name, value] : options.headers) headers_.emplace(name, value);
    auto [sec, usec] = SecUsec(options.timeout);
    client_.set_connection_timeout(sec, usec);
    client_.set_read_timeout(sec, usec);
    client_.set_write_timeout(sec, usec);
    client_.set_keep_alive(true);
    // httplib writes headers and body separately; with Nagle's algorithm the
    // body then waits for the peer's delayed ACK (~40 ms per POST).
    client_.set_tcp_nodelay(true);
    client_.set_follow_location(false);  // a redirect is a failure: the receiver's URL is configured
  }

  bool valid() const { return client_.is_valid(); }

  Status Deliver(std::span<const OutboxRecord> records, const std::atomic<bool>& stopping) override {
    ScopedSigpipeBlock no_sigpipe;
    for (const OutboxRecord& r : records) {
      if (r.held_out && !options_.deliver_held_out) continue;
      if (Status s = Post(r.action_json, stopping); !s.ok()) return s;
    }
    return Status::Ok();
  }

  std::string Describe() const override { return "webhook:" + url_.without_query; }

 private:
  static std::pair<time_t, time_t> SecUsec(milliseconds d) {
    return {static_cast<time_t>(d.count() / 1000), static_cast<time_t>((d.count() % 1000) * 1000)};
  }

  // POSTs one body until a 2xx, retry_for, or `stopping`.
  Status Post(std::string_view body, const std::atomic<bool>& stopping) {
    std::optional<Clock::time_point> give_up_at;
    milliseconds ceiling = options_.initial_backoff;
    int attempts = 0;
    std::string last_error;
    auto unavailable = [&](const std::string& why) {
      return Status::Unavailable(Describe() + ": " + why + " after " + std::to_string(attempts) +
                                 " attempt(s); last: " + last_error);
    };
    for (;;) {
      if (stopping.load())
        return attempts == 0 ? Status::Unavailable(Describe() + ": stopping") : unavailable("stopping");
      ++attempts;
      httplib::Result res = client_.Post(url_.path, headers_, body.data(), body.size(), "application/json");
      if (res && res->status >= 200 && res->status < 300) return Status::Ok();
      last_error = res ? "HTTP " + std::to_string(res->status) : httplib::to_string(res.error());
      Clock::time_point now = Clock::now();
      if (!give_up_at) give_up_at = now + options_.retry_for;
      if (now >= *give_up_at) return unavailable("no 2xx within retry_for");
      std::uniform_int_distribution<int64_t> jitter(0, ceiling.count());
      Clock::time_point wake = std::min(now + milliseconds(jitter(rng_)), *give_up_at);
      ceiling = std::min(ceiling * 2, options_.max_backoff);
      // Sliced so that `stopping` is seen within kWaitSlice.
      while (Clock::now() < wake) {
        if (stopping.load()) return unavailable("stopping");
        std::this_thread::sleep_for(std::min<Clock::duration>(kWaitSlice, wake - Clock::now()));
      }
    }
  }

  ParsedUrl url_;
  WebhookOutputOptions options_;
  httplib::Headers headers_;
  httplib::Client client_;
  std::mt19937_64 rng_;
};

}  // namespace

Result<std::unique_ptr<ActionOutput>> OpenWebhookOutput(const WebhookOutputOptions& options) {
  auto url = ParseUrl(options.url);
  if (!url.ok()) return url.status();
  if (Status s = CheckHeaders(options.headers); !s.ok()) return s;
  auto positive = [](milliseconds d) { return d > milliseconds::zero(); };
  if (!positive(options.timeout) || !positive(options.initial_backoff) ||
      options.max_backoff < options.initial_backoff || options.retry_for < milliseconds::zero()) {
    return Status::InvalidArgument("webhook " + url->without_query +
                                   ": timeout and initial_backoff must be positive, max_backoff at least "
                                   "initial_backoff, retry_for not negative");
  }
  auto output = std::make_unique<WebhookOutput>(std::move(url).value(), options);
  if (!output->valid()) return Status::InvalidArgument(output->Describe() + ": cannot set up an HTTP client for it");
  return std::unique_ptr<ActionOutput>(std::move(output));
}

}  // namespace rapport::connectors
