// Sinks against real peers: files in a temporary directory, an httplib server
// on loopback, and librdkafka's mock cluster (EmbeddedBroker).
#include "rapport/connectors/sinks.h"

#include <httplib.h>
#include <librdkafka/rdkafkacpp.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "rapport/connectors/dead_letter.h"
#include "rapport/connectors/embedded_broker.h"
#include "temp_dir.h"

using rapport::RejectReason;
using rapport::StatusCode;
using rapport::connectors::ActionOutput;
using rapport::connectors::AppendDeadLetterJson;
using rapport::connectors::DeadLetter;
using rapport::connectors::DeadLetterOutput;
using rapport::connectors::EmbeddedBroker;
using rapport::connectors::FileOutputOptions;
using rapport::connectors::KafkaOutputOptions;
using rapport::connectors::OutboxRecord;
using rapport::connectors::WebhookOutputOptions;
using rapport::testing::ReadFile;
using rapport::testing::TempDir;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

namespace {

// Outbox records with storage: OutboxRecord only holds views.
class Batch {
 public:
  // Adds the action "a-<n>" for customer "c-<n>".
  Batch& Add(int n, bool held_out = false) {
    const std::string& customer = strings_.emplace_back("c-" + std::to_string(n));
    const std::string& json = strings_.emplace_back(Json(n, held_out));
    OutboxRecord r;
    r.sequence = static_cast<uint64_t>(n);
    r.customer_id = customer;
    r.action_json = json;
    r.held_out = held_out;
    records_.push_back(r);
    return *this;
  }
  static std::string Json(int n, bool held_out = false) {
    std::string id = std::to_string(n);
    return R"({"action_id":"a-)" + id + R"(","campaign":"thanks","customer_id":"c-)" + id + R"(")" +
           (held_out ? R"(,"held_out":true)" : "") + "}";
  }
  const std::vector<OutboxRecord>& records() const { return records_; }

 private:
  std::deque<std::string> strings_;  // a deque keeps the views valid
  std::vector<OutboxRecord> records_;
};

std::string ActionId(int n) { return R"("action_id":"a-)" + std::to_string(n) + R"(")"; }

template <class T>
T OpenOk(rapport::Result<T> r) {
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  return std::move(r).value();
}

DeadLetter Letter(int n, std::string_view raw) {
  DeadLetter l;
  l.source = "events.jsonl";
  l.line = static_cast<uint64_t>(n);
  l.offset = static_cast<uint64_t>(n) * 100;
  l.reason = RejectReason::kBadTs;
  l.message = "ts is not a time";
  l.raw = raw;
  return l;
}

std::string LetterJson(const DeadLetter& l) {
  std::string out;
  AppendDeadLetterJson(l, &out);
  return out;
}

milliseconds Since(Clock::time_point start) { return std::chrono::duration_cast<milliseconds>(Clock::now() - start); }

// ---------------------------------------------------------------------------
// A webhook receiver: answers 503 to the first `fail_first` requests (all of
// them when negative), then 200, and records what it accepted.
class Receiver {
 public:
  explicit Receiver(int fail_first) : fail_first_(fail_first) {
    server_.Post("/hook", [this](const httplib::Request& req, httplib::Response& res) {
      std::lock_guard<std::mutex> lock(mu_);
      ++requests_;
      if (fail_first_ < 0 || requests_ <= fail_first_) {
        res.status = 503;
      } else {
        res.status = 200;
        bodies_.push_back(req.body);
        content_types_.insert(req.get_header_value("Content-Type"));
        authorizations_.insert(req.get_header_value("Authorization"));
      }
      cv_.notify_all();
    });
    server_.set_tcp_nodelay(true);  // no delayed-ACK stall per response
    port_ = server_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    thread_ = std::thread([this] {
      server_.listen_after_bind();
      listen_returned_ = true;
    });
  }
  ~Receiver() {
    // stop() only ends an accept loop that has started; repeat until it has.
    while (!listen_returned_) {
      server_.stop();
      std::this_thread::yield();
    }
    thread_.join();
  }

  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hook"; }
  int requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  std::vector<std::string> bodies() {
    std::lock_guard<std::mutex> lock(mu_);
    return bodies_;
  }
  std::set<std::string> content_types() {
    std::lock_guard<std::mutex> lock(mu_);
    return content_types_;
  }
  std::set<std::string> authorizations() {
    std::lock_guard<std::mutex> lock(mu_);
    return authorizations_;
  }
  void WaitForRequests(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return requests_ >= n; });
  }

 private:
  httplib::Server server_;
  std::atomic<bool> listen_returned_{false};
  std::thread thread_;
  int port_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  int fail_first_;
  int requests_ = 0;
  std::vector<std::string> bodies_;
  std::set<std::string> content_types_;
  std::set<std::string> authorizations_;
};

WebhookOutputOptions FastRetries(const std::string& url) {
  WebhookOutputOptions o;
  o.url = url;
  o.timeout = milliseconds(2000);
  o.initial_backoff = milliseconds(10);
  o.max_backoff = milliseconds(40);
  o.retry_for = milliseconds(5000);
  return o;
}

bool AnyContains(const std::vector<std::string>& texts, const std::string& needle) {
  for (const auto& t : texts) {
    if (t.find(needle) != std::string::npos) return true;
  }
  return false;
}

// ---------------------------------------------------------------------------
// Kafka: reads a topic from the beginning with assign(), which needs no group
// join (the mock cluster's first join takes seconds).
using KeyValue = std::pair<std::string, std::string>;

class TopicReader {
 public:
  TopicReader(const std::string& bootstrap, const std::string& topic, int partitions) {
    std::unique_ptr<RdKafka::Conf> conf(RdKafka::Conf::create(RdKafka::Conf::CONF_GLOBAL));
    std::string err;
    REQUIRE(conf->set("bootstrap.servers", bootstrap, err) == RdKafka::Conf::CONF_OK);
    // assign() never joins the group, but the consumer wants an id.
    REQUIRE(conf->set("group.id", "sinks-test-" + std::to_string(std::random_device{}()), err) ==
            RdKafka::Conf::CONF_OK);
    REQUIRE(conf->set("enable.auto.commit", "false", err) == RdKafka::Conf::CONF_OK);
    REQUIRE(conf->set("auto.offset.reset", "earliest", err) == RdKafka::Conf::CONF_OK);
    // An empty fetch otherwise waits 500 ms on the broker.
    REQUIRE(conf->set("fetch.wait.max.ms", "20", err) == RdKafka::Conf::CONF_OK);
    consumer_.reset(RdKafka::KafkaConsumer::create(conf.get(), err));
    INFO(err);
    REQUIRE(consumer_ != nullptr);
    std::vector<RdKafka::TopicPartition*> assignment;
    for (int p = 0; p < partitions; ++p) {
      assignment.push_back(RdKafka::TopicPartition::create(topic, p, RdKafka::Topic::OFFSET_BEGINNING));
    }
    RdKafka::ErrorCode e = consumer_->assign(assignment);
    RdKafka::TopicPartition::destroy(assignment);
    REQUIRE(e == RdKafka::ERR_NO_ERROR);
  }
  ~TopicReader() { consumer_->close(); }

  // Reads until `done(messages so far)` or 10 s.
  template <class Done>
  std::vector<KeyValue> ReadUntil(Done done) {
    std::vector<KeyValue> got;
    auto deadline = Clock::now() + std::chrono::seconds(10);
    while (!done(got) && Clock::now() < deadline) {
      std::unique_ptr<RdKafka::Message> m(consumer_->consume(100));
      if (m->err() == RdKafka::ERR_NO_ERROR) {
        got.emplace_back(m->key() != nullptr ? *m->key() : std::string("<none>"),
                         std::string(static_cast<const char*>(m->payload()), m->len()));
      }
    }
    return got;
  }
  std::vector<KeyValue> Read(size_t n) {
    return ReadUntil([n](const std::vector<KeyValue>& got) { return got.size() >= n; });
  }

 private:
  std::unique_ptr<RdKafka::KafkaConsumer> consumer_;
};

std::unique_ptr<EmbeddedBroker> StartBroker(const std::vector<std::pair<std::string, int>>& topics) {
  auto broker = OpenOk(EmbeddedBroker::Start(1));
  for (const auto& [topic, partitions] : topics) {
    rapport::Status s = broker->CreateTopic(topic, partitions);
    INFO(s.ToString());
    REQUIRE(s.ok());
  }
  return broker;
}

}  // namespace

// ===========================================================================
// file

TEST_CASE("file output appends one line per action across Deliver calls and opens", "[sinks][file]") {
  TempDir dir;
  std::string path = dir.File("actions.jsonl");
  std::atomic<bool> stopping{false};
  {
    auto out = OpenOk(rapport::connectors::OpenFileOutput(FileOutputOptions{path, true}));
    CHECK(out->Describe() == "file:" + path);
    Batch first;
    first.Add(1).Add(2, /*held_out=*/true).Add(3);
    REQUIRE(out->Deliver(first.records(), stopping).ok());
    CHECK(ReadFile(path) == Batch::Json(1) + "\n" + Batch::Json(2, true) + "\n" + Batch::Json(3) + "\n");
    Batch second;
    second.Add(4);
    REQUIRE(out->Deliver(second.records(), stopping).ok());
    REQUIRE(out->Deliver({}, stopping).ok());
  }
  // A new output on the same file keeps what is there.
  auto again = OpenOk(rapport::connectors::OpenFileOutput(FileOutputOptions{path, true}));
  Batch third;
  third.Add(5);
  REQUIRE(again->Deliver(third.records(), stopping).ok());
  CHECK(ReadFile(path) == Batch::Json(1) + "\n" + Batch::Json(2, true) + "\n" + Batch::Json(3) + "\n" + Batch::Json(4) +
                              "\n" + Batch::Json(5) + "\n");
}

TEST_CASE("file output leaves out held-out actions when asked", "[sinks][file]") {
  TempDir dir;
  std::string path = dir.File("actions.jsonl");
  std::atomic<bool> stopping{false};
  auto out = OpenOk(rapport::connectors::OpenFileOutput(FileOutputOptions{path, false}));
  Batch b;
  b.Add(1, true).Add(2).Add(3, true);
  REQUIRE(out->Deliver(b.records(), stopping).ok());
  CHECK(ReadFile(path) == Batch::Json(2) + "\n");
}

TEST_CASE("file output reports a path it cannot open", "[sinks][file]") {
  TempDir dir;
  auto out = rapport::connectors::OpenFileOutput(FileOutputOptions{dir.File("missing/actions.jsonl"), true});
  REQUIRE_FALSE(out.ok());
  CHECK(out.status().code() == StatusCode::kIoError);
  CHECK(out.status().message().find("missing/actions.jsonl") != std::string::npos);
  CHECK(rapport::connectors::OpenFileOutput(FileOutputOptions{"", true}).status().code() ==
        StatusCode::kInvalidArgument);
}

TEST_CASE("dead-letter file output writes one JSON line per letter, durable on Flush", "[sinks][file]") {
  TempDir dir;
  std::string path = dir.File("dead.jsonl");
  DeadLetter a = Letter(1, "not json");
  DeadLetter b = Letter(2, std::string("\x00\xff", 2));
  {
    auto out = OpenOk(rapport::connectors::OpenDeadLetterFileOutput(path));
    CHECK(out->Describe() == "file:" + path);
    REQUIRE(out->Write(a).ok());
    REQUIRE(out->Write(b).ok());
    REQUIRE(out->Flush().ok());
    CHECK(ReadFile(path) == LetterJson(a) + "\n" + LetterJson(b) + "\n");
    REQUIRE(out->Flush().ok());  // nothing new
  }
  auto again = OpenOk(rapport::connectors::OpenDeadLetterFileOutput(path));
  REQUIRE(again->Write(a).ok());
  REQUIRE(again->Flush().ok());
  CHECK(ReadFile(path) == LetterJson(a) + "\n" + LetterJson(b) + "\n" + LetterJson(a) + "\n");
}

// ===========================================================================
// webhook

TEST_CASE("webhook delivers every action through a receiver that fails at first", "[sinks][webhook]") {
  Receiver receiver(/*fail_first=*/3);
  WebhookOutputOptions options = FastRetries(receiver.Url());
  options.headers["Authorization"] = "Bearer s3cret";
  auto out = OpenOk(rapport::connectors::OpenWebhookOutput(options));
  CHECK(out->Describe() == "webhook:" + receiver.Url());
  Batch b;
  for (int i = 1; i <= 5; ++i) b.Add(i);
  std::atomic<bool> stopping{false};
  rapport::Status s = out->Deliver(b.records(), stopping);
  INFO(s.ToString());
  REQUIRE(s.ok());
  std::vector<std::string> bodies = receiver.bodies();
  CHECK(receiver.requests() == 3 + 5);
  for (int i = 1; i <= 5; ++i) CHECK(AnyContains(bodies, ActionId(i)));
  CHECK(bodies.front() == Batch::Json(1));  // the body is the action JSON as is
  CHECK(receiver.content_types() == std::set<std::string>{"application/json"});
  CHECK(receiver.authorizations() == std::set<std::string>{"Bearer s3cret"});
}

TEST_CASE("webhook gives up with Unavailable after retry_for", "[sinks][webhook]") {
  Receiver receiver(/*fail_first=*/-1);
  WebhookOutputOptions options = FastRetries(receiver.Url());
  options.retry_for = milliseconds(300);
  auto out = OpenOk(rapport::connectors::OpenWebhookOutput(options));
  Batch b;
  b.Add(1).Add(2);
  std::atomic<bool> stopping{false};
  auto start = Clock::now();
  rapport::Status s = out->Deliver(b.records(), stopping);
  milliseconds took = Since(start);
  INFO(s.ToString());
  CHECK(s.code() == StatusCode::kUnavailable);
  CHECK(s.message().find("HTTP 503") != std::string::npos);
  CHECK(took >= milliseconds(300));
  CHECK(took < milliseconds(3000));
  CHECK(receiver.requests() >= 3);  // it did retry, with back-off of at most 40 ms
  CHECK(receiver.bodies().empty());
}

TEST_CASE("webhook gives up with Unavailable when nobody listens", "[sinks][webhook]") {
  std::string url;
  {
    Receiver gone(0);
    url = gone.Url();
  }  // the port is closed now: connections are refused
  WebhookOutputOptions options = FastRetries(url);
  options.retry_for = milliseconds(200);
  auto out = OpenOk(rapport::connectors::OpenWebhookOutput(options));
  Batch b;
  b.Add(1);
  std::atomic<bool> stopping{false};
  rapport::Status s = out->Deliver(b.records(), stopping);
  INFO(s.ToString());
  CHECK(s.code() == StatusCode::kUnavailable);
}

TEST_CASE("webhook Deliver returns promptly once stopping is set", "[sinks][webhook]") {
  Receiver receiver(/*fail_first=*/-1);
  WebhookOutputOptions options = FastRetries(receiver.Url());
  // Without `stopping`, a Deliver would wait up to 20 s between attempts for a minute.
  options.initial_backoff = milliseconds(20000);
  options.max_backoff = milliseconds(20000);
  options.retry_for = milliseconds(60000);
  auto out = OpenOk(rapport::connectors::OpenWebhookOutput(options));
  Batch b;
  b.Add(1);
  std::atomic<bool> stopping{false};
  std::thread stopper([&] {
    receiver.WaitForRequests(1);
    stopping = true;
  });
  auto start = Clock::now();
  rapport::Status s = out->Deliver(b.records(), stopping);
  milliseconds took = Since(start);
  stopper.join();
  INFO(s.ToString());
  CHECK(s.code() == StatusCode::kUnavailable);
  CHECK(s.message().find("stopping") != std::string::npos);
  CHECK(took < milliseconds(2000));

  // Already stopping: nothing is sent.
  int before = receiver.requests();
  CHECK(out->Deliver(b.records(), stopping).code() == StatusCode::kUnavailable);
  CHECK(receiver.requests() == before);
}

TEST_CASE("webhook sends held-out actions only when deliver_held_out is set", "[sinks][webhook]") {
  Batch b;
  b.Add(1).Add(2, true).Add(3).Add(4, true);
  std::atomic<bool> stopping{false};
  {
    Receiver receiver(0);
    auto out = OpenOk(rapport::connectors::OpenWebhookOutput(FastRetries(receiver.Url())));  // default: false
    REQUIRE(out->Deliver(b.records(), stopping).ok());
    CHECK(receiver.bodies() == std::vector<std::string>{Batch::Json(1), Batch::Json(3)});
  }
  {
    Receiver receiver(0);
    WebhookOutputOptions options = FastRetries(receiver.Url());
    options.deliver_held_out = true;
    auto out = OpenOk(rapport::connectors::OpenWebhookOutput(options));
    REQUIRE(out->Deliver(b.records(), stopping).ok());
    CHECK(receiver.bodies() ==
          std::vector<std::string>{Batch::Json(1), Batch::Json(2, true), Batch::Json(3), Batch::Json(4, true)});
  }
}

TEST_CASE("webhook rejects bad URLs and options with InvalidArgument", "[sinks][webhook]") {
  struct Case {
    const char* url;
    const char* why;
  };
  const Case cases[] = {
      {"", "expected http://"},
      {"localhost:8080/hook", "expected http://"},
      {"ftp://example.com/hook", "scheme"},
      {"http://", "host is missing"},
      {"http:///hook", "host is missing"},
      {"http://example.com:0/hook", "port"},
      {"http://example.com:65536/hook", "port"},
      {"http://example.com:80a/hook", "port"},
      {"http://example.com:/hook", "port"},
      {"http://user:pw@example.com/hook", "headers"},
      {"http://example.com/hook#frag", "fragment"},
      {"http://example.com/a hook", "space"},
      {"http://[::1]:8080/hook", "IPv6"},
      {"http://exa$mple.com/hook", "host"},
  };
  for (const Case& c : cases) {
    WebhookOutputOptions o;
    o.url = c.url;
    auto out = rapport::connectors::OpenWebhookOutput(o);
    INFO(c.url << " -> " << out.status().ToString());
    REQUIRE_FALSE(out.ok());
    CHECK(out.status().code() == StatusCode::kInvalidArgument);
    CHECK(out.status().message().find(c.why) != std::string::npos);
  }

  WebhookOutputOptions header;
  header.url = "http://example.com/hook";
  header.headers["X-Evil"] = "a\r\nHost: other";
  CHECK(rapport::connectors::OpenWebhookOutput(header).status().code() == StatusCode::kInvalidArgument);
  header.headers = {{"content-type", "text/plain"}};
  CHECK(rapport::connectors::OpenWebhookOutput(header).status().code() == StatusCode::kInvalidArgument);

  WebhookOutputOptions backoff;
  backoff.url = "http://example.com/hook";
  backoff.initial_backoff = milliseconds(0);
  CHECK(rapport::connectors::OpenWebhookOutput(backoff).status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("webhook accepts the URL forms it supports", "[sinks][webhook]") {
  struct Case {
    const char* url;
    const char* described;
  };
  const Case cases[] = {
      {"http://example.com", "webhook:http://example.com:80/"},
      {"HTTP://Example.com:8080?token=x", "webhook:http://example.com:8080/"},
      {"http://example.com/hooks/rapport?token=secret", "webhook:http://example.com:80/hooks/rapport"},
#ifdef CPPHTTPLIB_OPENSSL_SUPPORT
      {"https://example.com/hook", "webhook:https://example.com:443/hook"},
#endif
  };
  for (const Case& c : cases) {
    WebhookOutputOptions o;
    o.url = c.url;
    auto out = rapport::connectors::OpenWebhookOutput(o);
    INFO(c.url << " -> " << out.status().ToString());
    REQUIRE(out.ok());
    CHECK(out.value()->Describe() == c.described);
  }
}

// ===========================================================================
// kafka

TEST_CASE("kafka output produces each action keyed by its customer", "[sinks][kafka]") {
  auto broker = StartBroker({{"actions", 1}});
  KafkaOutputOptions options;
  options.properties = {{"bootstrap.servers", broker->bootstrap_servers()}};
  options.topic = "actions";
  options.delivery_timeout = milliseconds(10000);
  options.deliver_held_out = false;
  auto out = OpenOk(rapport::connectors::OpenKafkaOutput(options));
  CHECK(out->Describe() == "kafka:actions");
  std::atomic<bool> stopping{false};

  Batch first;
  first.Add(1).Add(2, /*held_out=*/true).Add(3).Add(4);
  rapport::Status s = out->Deliver(first.records(), stopping);
  INFO(s.ToString());
  REQUIRE(s.ok());
  // One partition, so the last record read marks the end: nothing else came.
  Batch last;
  last.Add(5);
  REQUIRE(out->Deliver(last.records(), stopping).ok());

  TopicReader reader(broker->bootstrap_servers(), "actions", 1);
  std::vector<KeyValue> got = reader.ReadUntil(
      [](const std::vector<KeyValue>& kv) { return !kv.empty() && kv.back().second == Batch::Json(5); });
  CHECK(got == std::vector<KeyValue>{
                   {"c-1", Batch::Json(1)}, {"c-3", Batch::Json(3)}, {"c-4", Batch::Json(4)}, {"c-5", Batch::Json(5)}});
  out.reset();  // clients go before the broker
}

TEST_CASE("kafka outputs reject bad configurations with InvalidArgument", "[sinks][kafka]") {
  auto invalid = [](rapport::connectors::KafkaProperties properties, std::string topic) {
    KafkaOutputOptions options;
    options.properties = std::move(properties);
    options.topic = std::move(topic);
    auto out = rapport::connectors::OpenKafkaOutput(options);
    INFO(out.status().ToString());
    return !out.ok() && out.status().code() == StatusCode::kInvalidArgument;
  };
  const std::string servers = "127.0.0.1:1";
  CHECK(invalid({}, "actions"));
  CHECK(invalid({{"bootstrap.servers", servers}}, ""));
  CHECK(invalid({{"bootstrap.servers", servers}, {"acks", "1"}}, "actions"));
  CHECK(invalid({{"bootstrap.servers", servers}, {"enable.idempotence", "false"}}, "actions"));
  CHECK(invalid({{"bootstrap.servers", servers}, {"no.such.property", "1"}}, "actions"));
  auto dead = rapport::connectors::OpenDeadLetterKafkaOutput({{"bootstrap.servers", servers}}, "");
  CHECK(dead.status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("kafka dead-letter output produces each letter, acknowledged on Flush", "[sinks][kafka]") {
  auto broker = StartBroker({{"dead-letters", 1}});
  auto out = OpenOk(rapport::connectors::OpenDeadLetterKafkaOutput({{"bootstrap.servers", broker->bootstrap_servers()}},
                                                                   "dead-letters"));
  CHECK(out->Describe() == "kafka:dead-letters");
  std::vector<DeadLetter> letters = {Letter(1, "{"), Letter(2, "binary \x01\x02"), Letter(3, "")};
  for (const DeadLetter& l : letters) REQUIRE(out->Write(l).ok());
  rapport::Status s = out->Flush();
  INFO(s.ToString());
  REQUIRE(s.ok());
  REQUIRE(out->Flush().ok());  // nothing new

  TopicReader reader(broker->bootstrap_servers(), "dead-letters", 1);
  std::vector<KeyValue> got = reader.Read(letters.size());
  REQUIRE(got.size() == letters.size());
  for (size_t i = 0; i < letters.size(); ++i) {
    CHECK(got[i].first == "<none>");
    CHECK(got[i].second == LetterJson(letters[i]));
  }
  out.reset();
}

TEST_CASE("kafka dead-letter output: Flush fails while the broker is down, works after", "[sinks][kafka]") {
  auto broker = StartBroker({{"dead-letters", 1}});
  auto out = OpenOk(rapport::connectors::OpenDeadLetterKafkaOutput({{"bootstrap.servers", broker->bootstrap_servers()},
                                                                    {"message.timeout.ms", "500"},
                                                                    {"reconnect.backoff.max.ms", "200"}},
                                                                   "dead-letters"));
  REQUIRE(broker->SetBrokerDown(1).ok());
  DeadLetter lost = Letter(1, "{");
  REQUIRE(out->Write(lost).ok());  // queued locally
  auto start = Clock::now();
  rapport::Status down = out->Flush();
  INFO(down.ToString());
  CHECK(down.code() == StatusCode::kUnavailable);
  CHECK(Since(start) < milliseconds(500 + 2000 + 500));  // message timeout + grace

  // The daemon did not commit the position, so the letter comes again.
  REQUIRE(broker->SetBrokerUp(1).ok());
  rapport::Status up;
  auto deadline = Clock::now() + std::chrono::seconds(15);
  do {
    REQUIRE(out->Write(lost).ok());
    up = out->Flush();
  } while (!up.ok() && Clock::now() < deadline);
  INFO(up.ToString());
  REQUIRE(up.ok());
  TopicReader reader(broker->bootstrap_servers(), "dead-letters", 1);
  std::vector<KeyValue> got = reader.Read(1);
  REQUIRE_FALSE(got.empty());
  CHECK(got.front().second == LetterJson(lost));
  out.reset();
}

TEST_CASE("kafka output with the broker down: Unavailable, then delivered once it is back", "[sinks][kafka]") {
  auto broker = StartBroker({{"actions", 3}});
  KafkaOutputOptions options;
  options.properties = {{"bootstrap.servers", broker->bootstrap_servers()},
                        // Come back quickly once the broker does.
                        {"reconnect.backoff.max.ms", "200"}};
  options.topic = "actions";
  options.delivery_timeout = milliseconds(700);
  auto out = OpenOk(rapport::connectors::OpenKafkaOutput(options));
  std::atomic<bool> stopping{false};
  // Deliver until it works, as the dispatcher does: with a 700 ms delivery
  // timeout the very first batch can lose the race with the producer's start
  // (connection, producer id, topic metadata).
  auto retry_until_ok = [&](const Batch& batch) {
    rapport::Status s;
    int attempts = 0;
    auto deadline = Clock::now() + std::chrono::seconds(15);
    do {
      ++attempts;
      s = out->Deliver(batch.records(), stopping);
    } while (!s.ok() && Clock::now() < deadline);
    INFO("attempts: " << attempts << ", last: " << s.ToString());
    REQUIRE(s.ok());
  };
  Batch warm;
  warm.Add(0);
  retry_until_ok(warm);

  REQUIRE(broker->SetBrokerDown(1).ok());
  Batch batch;
  batch.Add(1).Add(2).Add(3);
  auto start = Clock::now();
  rapport::Status down = out->Deliver(batch.records(), stopping);
  milliseconds took = Since(start);
  INFO(down.ToString());
  CHECK(down.code() == StatusCode::kUnavailable);
  CHECK(took < milliseconds(700 + 500));

  // `stopping` cuts the wait short even with a long delivery timeout.
  KafkaOutputOptions patient = options;
  patient.delivery_timeout = milliseconds(30000);
  auto waiting = OpenOk(rapport::connectors::OpenKafkaOutput(patient));
  std::atomic<bool> stop_now{true};
  start = Clock::now();
  rapport::Status stopped = waiting->Deliver(batch.records(), stop_now);
  CHECK(stopped.code() == StatusCode::kUnavailable);
  CHECK(Since(start) < milliseconds(2000));
  waiting.reset();

  // The dispatcher's part: the records stayed in the outbox; send them again.
  REQUIRE(broker->SetBrokerUp(1).ok());
  retry_until_ok(batch);

  // Nothing lost (duplicates are allowed), each under its customer's key.
  TopicReader reader(broker->bootstrap_servers(), "actions", 3);
  auto has_all = [](const std::vector<KeyValue>& got) {
    std::set<std::string> seen;
    for (const auto& kv : got) seen.insert(kv.second);
    return seen.size() == 4;
  };
  std::vector<KeyValue> got = reader.ReadUntil(has_all);
  CHECK(has_all(got));
  for (const auto& [key, value] : got) {
    CHECK(value.find(R"("customer_id":")" + key + R"(")") != std::string::npos);
  }
  out.reset();
}
