// The device side's runner core against the protocol's vectors (test/fixtures/runner-protocol, the same files the
// TypeScript tests read) and on whole sessions with a fake executor. Run by scripts/check-coreml-bridge.sh.
//
// Usage: runner_core_test <vectors dir>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fake_executor.h"
#include "frame.h"
#include "json.h"
#include "runner.h"
#include "tensor_convert.h"

using namespace sora::runner;

namespace {

int failures = 0;
int checks = 0;

#define CHECK(condition, what)                                                        \
  do {                                                                                \
    ++checks;                                                                         \
    if (!(condition)) {                                                               \
      ++failures;                                                                     \
      std::fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, std::string(what).c_str()); \
    }                                                                                 \
  } while (0)

std::string directory;

std::vector<uint8_t> ReadFile(const std::string& name) {
  std::ifstream file(directory + "/" + name, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(file), {});
}

std::string Hex(const std::vector<uint8_t>& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (const uint8_t byte : bytes) {
    out += digits[byte >> 4];
    out += digits[byte & 15];
  }
  return out;
}

std::vector<uint8_t> Unhex(const std::string& text) {
  std::vector<uint8_t> out;
  for (size_t i = 0; i + 1 < text.size(); i += 2) out.push_back(static_cast<uint8_t>(std::stoi(text.substr(i, 2), nullptr, 16)));
  return out;
}

Tensor TensorOf(const Json& described) {
  Tensor t;
  t.dtype = *ParseDType(described.find("dtype")->asString());
  for (const Json& dim : described.find("dims")->asArray()) t.dims.push_back(dim.asInteger());
  t.data = Unhex(described.find("hex")->asString());
  return t;
}

Json Described(const std::vector<Tensor>& tensors) {
  Json::Array list;
  for (const Tensor& t : tensors) {
    Json::Array dims;
    for (const int64_t dim : t.dims) dims.emplace_back(dim);
    list.emplace_back(Json::Object{{"dtype", DTypeName(t.dtype)}, {"dims", Json(std::move(dims))}, {"hex", Hex(t.data)}});
  }
  return Json(std::move(list));
}

// Every member `expected` names has this value in `actual` (objects compared member by member, recursively).
bool Matches(const Json& actual, const Json& expected) {
  if (expected.isObject()) {
    if (!actual.isObject()) return false;
    for (const auto& [name, value] : expected.asObject()) {
      const Json* theirs = actual.find(name);
      if (theirs == nullptr || !Matches(*theirs, value)) return false;
    }
    return true;
  }
  return actual == expected;
}

std::vector<FrameEvent> ReadInPieces(const std::vector<uint8_t>& bytes, FrameLimits limits, size_t piece) {
  FrameReader reader(limits);
  std::vector<FrameEvent> events;
  for (size_t at = 0; at < bytes.size(); at += piece) reader.push(bytes.data() + at, std::min(piece, bytes.size() - at), events);
  return events;
}

void TestFrames(const Json& vectors) {
  for (const Json& vector : vectors.find("frames")->asArray()) {
    const std::string name = vector.find("name")->asString();
    const std::vector<uint8_t> bytes = ReadFile(vector.find("file")->asString());
    std::vector<Tensor> tensors;
    for (const Json& described : vector.find("tensors")->asArray()) tensors.push_back(TensorOf(described));
    Json header(Json::Object{});
    for (const auto& [key, value] : vector.find("header")->asObject()) {
      if (key != "tensors") header.set(key, value);
    }
    CHECK(EncodeFrame(header, tensors) == bytes, "frames/" + name + ": encoded bytes differ from the vector");
    for (const size_t piece : {size_t{1}, size_t{7}, bytes.size()}) {
      const auto events = ReadInPieces(bytes, FrameLimits{1 << 20, 1 << 24}, piece);
      CHECK(events.size() == 1 && events[0].frame, "frames/" + name + ": not read back as one frame");
      if (events.size() != 1 || !events[0].frame) continue;
      CHECK(events[0].frame->header == *vector.find("header"), "frames/" + name + ": header read back differs");
      CHECK(Described(events[0].frame->tensors) == *vector.find("tensors"), "frames/" + name + ": tensors read back differ");
    }
  }
}

void TestBadFrames(const Json& vectors) {
  for (const Json& vector : vectors.find("bad")->asArray()) {
    const std::string name = vector.find("name")->asString();
    const Json& limits = *vector.find("limits");
    const Json& expected = *vector.find("problem");
    const auto events = ReadInPieces(ReadFile(vector.find("file")->asString()),
                                     FrameLimits{static_cast<uint64_t>(limits.find("maxHeaderBytes")->asInteger()),
                                                 static_cast<uint64_t>(limits.find("maxFrameBytes")->asInteger())},
                                     5);
    CHECK(!events.empty() && events[0].problem, "bad/" + name + ": no problem reported");
    if (events.empty() || !events[0].problem) continue;
    const FrameProblem& problem = *events[0].problem;
    CHECK(problem.code == expected.find("code")->asString(), "bad/" + name + ": code " + problem.code);
    CHECK(problem.fatal == expected.find("fatal")->asBool(), "bad/" + name + ": fatal");
    const Json& id = *expected.find("id");
    CHECK(id.isNull() ? !problem.id : problem.id && *problem.id == id.asInteger(), "bad/" + name + ": id");
    const Json* next = vector.find("next");
    if (next == nullptr) {
      CHECK(events.size() == 1, "bad/" + name + ": read on after the problem");
    } else {
      CHECK(events.size() == 2 && events[1].frame && Matches(events[1].frame->header, *next), "bad/" + name + ": the next frame is not read");
    }
  }
}

RunnerConfig FakeConfig() {
  RunnerConfig config;
  config.identity = FakeIdentity();
  return config;
}

// A session whose replies are collected, for the tests to wait on.
struct Client {
  std::mutex mutex;
  std::condition_variable arrived;
  FrameReader reader{FrameLimits{1 << 20, 1 << 30}};
  std::vector<Frame> replies;
  bool ended = false;
  std::shared_ptr<Session> session;

  explicit Client(Runner& runner) {
    session = runner.open(
        [this](std::vector<uint8_t> bytes) {
          std::lock_guard<std::mutex> lock(mutex);
          std::vector<FrameEvent> events;
          reader.push(bytes.data(), bytes.size(), events);
          for (FrameEvent& event : events) {
            if (event.frame) replies.push_back(std::move(*event.frame));
          }
          arrived.notify_all();
        },
        [this] {
          std::lock_guard<std::mutex> lock(mutex);
          ended = true;
          arrived.notify_all();
        });
  }

  // Sends a frame and waits for `count` more replies.
  std::vector<Frame> exchange(const std::vector<uint8_t>& bytes, size_t count) {
    size_t before;
    {
      std::lock_guard<std::mutex> lock(mutex);
      before = replies.size();
    }
    session->receive(bytes.data(), bytes.size());
    std::unique_lock<std::mutex> lock(mutex);
    arrived.wait_for(lock, std::chrono::seconds(10), [&] { return replies.size() >= before + count; });
    return std::vector<Frame>(replies.begin() + static_cast<ptrdiff_t>(before), replies.end());
  }

  Frame request(const Json& header, const std::vector<Tensor>& tensors = {}) {
    const auto got = exchange(EncodeFrame(header, tensors), 1);
    return got.empty() ? Frame{Json(Json::Object{{"type", "timeout"}}), {}} : got[0];
  }
};

void TestSessions(const Json& vectors) {
  for (const Json& vector : vectors.find("sessions")->asArray()) {
    const std::string name = vector.find("name")->asString();
    FakeExecutor executor;
    Runner runner(executor, FakeConfig());
    Client client(runner);
    for (const Json& step : vector.find("steps")->asArray()) {
      const auto& expect = step.find("expect")->asArray();
      const auto got = client.exchange(ReadFile(step.find("send")->asString()), expect.size());
      CHECK(got.size() == expect.size(), "sessions/" + name + ": " + std::to_string(got.size()) + " replies to " + step.find("send")->asString());
      for (size_t i = 0; i < std::min(got.size(), expect.size()); ++i) {
        Json header(Json::Object{});
        const Json* tensors = nullptr;
        for (const auto& [key, value] : expect[i].asObject()) {
          if (key == "tensors") tensors = &value;
          else header.set(key, value);
        }
        CHECK(Matches(got[i].header, header), "sessions/" + name + ": got " + got[i].header.dump() + ", expected " + header.dump());
        if (tensors != nullptr) CHECK(Described(got[i].tensors) == *tensors, "sessions/" + name + ": tensors of " + got[i].header.dump());
      }
    }
    client.session->finish();
  }
}

Tensor Floats(const std::vector<float>& values) {
  Tensor t{DType::Float32, {static_cast<int64_t>(values.size())}, std::vector<uint8_t>(values.size() * 4)};
  if (!values.empty()) std::memcpy(t.data.data(), values.data(), t.data.size());
  return t;
}

std::vector<float> ValuesOf(const Tensor& t) {
  std::vector<float> values(t.data.size() / 4);
  if (!values.empty()) std::memcpy(values.data(), t.data.data(), t.data.size());
  return values;
}

const Json kHello = Json(Json::Object{{"type", "hello"}, {"id", 0}, {"versions", Json(Json::Array{Json(1)})}});

Json Request(const char* type, int64_t id, Json::Object fields = {}) {
  Json header(Json::Object{{"type", type}, {"id", id}});
  for (auto& [name, value] : fields) header.set(name, value);
  return header;
}

// Blocks through the fake executor: keep, consume, fetch, a failing run, keep-loaded blocks, a second client.
void TestBlocks() {
  FakeExecutor executor;
  Runner runner(executor, FakeConfig());
  {
    Client client(runner);
    CHECK(client.request(kHello).header.find("type")->asString() == "hello", "blocks: hello");
    const Frame loaded = client.request(Request("load", 1, {{"name", "add_one"}, {"computeUnits", "cpu-gpu"}}));
    CHECK(Matches(loaded.header, Json(Json::Object{{"type", "load"}, {"block", 1}, {"cached", false}})), "blocks: load " + loaded.header.dump());
    CHECK(executor.lastComputeUnits == "cpu-gpu", "blocks: compute units passed on");
    const Json keepY(Json::Array{Json("y")});
    const Frame first = client.request(Request("run", 2, {{"block", 1}, {"inputs", Json(Json::Object{{"x", Json(Json::Object{{"tensor", 0}})}})}, {"keep", keepY}}),
                                       {Floats({1, 2})});
    const Json* y = first.header.find("outputs") ? first.header.find("outputs")->find("y") : nullptr;
    CHECK(y != nullptr && Matches(*y, Json(Json::Object{{"handle", 2}, {"dtype", "float32"}})), "blocks: kept output " + first.header.dump());
    const Frame second = client.request(Request(
        "run", 3, {{"block", 1}, {"inputs", Json(Json::Object{{"x", Json(Json::Object{{"handle", 2}})}})}, {"consume", Json(Json::Array{Json("x")})}}));
    CHECK(second.tensors.size() == 1 && ValuesOf(second.tensors[0]) == std::vector<float>({3, 4}), "blocks: chained run returns x + 2");
    CHECK(client.request(Request("fetch", 4, {{"handles", Json(Json::Array{Json(2)})}})).header.find("code")->asString() == "no-such-handle",
          "blocks: a consumed tensor is gone");
    const Frame failed = client.request(Request("run", 5, {{"block", 1}, {"inputs", Json(Json::Object{{"x", Json(Json::Object{{"tensor", 0}})}})}}), {Floats({-1})});
    CHECK(failed.header.find("code") && failed.header.find("code")->asString() == "run-failed", "blocks: a failing run " + failed.header.dump());
    const Frame put = client.request(Request("put", 6), {Floats({7})});
    CHECK(Matches(put.header, Json(Json::Object{{"handles", Json(Json::Array{Json(3)})}})), "blocks: put after a run " + put.header.dump());

    // A second client while this one is served: busy, and its connection ends.
    Client second_client(runner);
    const Frame busy = second_client.request(kHello);
    CHECK(busy.header.find("code") && busy.header.find("code")->asString() == "busy", "blocks: a second client is busy");
    CHECK(second_client.ended, "blocks: the busy client's connection ends");
    second_client.session->finish();
    client.session->finish();  // the connection drops: tensors freed, the block kept loaded
  }
  CHECK(runner.heldByAll().first == 0, "blocks: a gone client's tensors are freed");
  CHECK(executor.loadedCount() == 1 && runner.idleBlocks() == std::vector<std::string>{"add_one"}, "blocks: kept loaded, idle");
  {
    Client client(runner);
    client.request(kHello);
    const Frame again = client.request(Request("load", 1, {{"name", "add_one"}, {"computeUnits", "cpu-gpu"}}));
    CHECK(Matches(again.header, Json(Json::Object{{"cached", true}})), "blocks: the next client finds it loaded " + again.header.dump());
    client.request(Request("unload", 2, {{"block", 1}}));
    CHECK(executor.loadedCount() == 0, "blocks: unload without keep frees it");
    client.request(Request("load", 3, {{"name", "halves"}}));
    client.request(Request("unload", 4, {{"block", 2}, {"keep", true}}));
    CHECK(runner.idleBlocks() == std::vector<std::string>{"halves"}, "blocks: unload with keep leaves it idle");
    // Memory short: idle blocks go before a load.
    executor.available = FakeExecutor::kWeightBytes;
    client.request(Request("load", 5, {{"name", "add_one"}}));
    CHECK(runner.idleBlocks().empty() && executor.loadedCount() == 1, "blocks: an idle block is unloaded to make room");
    client.request(Request("unload", 6, {{"idle", true}}));
    client.session->finish();
  }
}

void TestTokenAndLimits() {
  FakeExecutor executor;
  RunnerConfig config = FakeConfig();
  config.token = "s3cret";
  config.maxHandles = 2;
  Runner runner(executor, config);
  {
    Client client(runner);
    const Frame refused = client.request(kHello);
    CHECK(refused.header.find("code") && refused.header.find("code")->asString() == "unauthorized" && client.ended, "token: required");
    client.session->finish();
  }
  Client client(runner);
  Json hello = kHello;
  hello.set("token", "s3cret");
  CHECK(client.request(hello).header.find("type")->asString() == "hello", "token: accepted");
  const Frame tooMany = client.request(Request("put", 1), {Floats({1}), Floats({2}), Floats({3})});
  CHECK(tooMany.header.find("code") && tooMany.header.find("code")->asString() == "limit", "limits: maxHandles");
  client.session->finish();
}

void TestJson() {
  for (const char* bad : {"{", "[1,]", "01", "\"\\ud800\"", "\"\xc3\x28\"", "{\"a\" 1}", "1 2", "nul", "\"\x01\""}) {
    CHECK(!ParseJson(bad), std::string("json: accepted ") + bad);
  }
  std::string deep(100, '[');
  deep += std::string(100, ']');
  CHECK(!ParseJson(deep), "json: nesting is bounded");
  const auto parsed = ParseJson("{\"a\":[1,-2.5,\"\\u00e9\\ud83d\\ude00\",true,null],\"b\":{}}");
  CHECK(parsed && parsed->dump() == "{\"a\":[1,-2.5,\"\xc3\xa9\xf0\x9f\x98\x80\",true,null],\"b\":{}}", "json: round trip");
}

// What the CoreML executor does to the contract's tensors before a package takes them.
void TestConvert() {
  CHECK(FloatToHalf(1.0f) == 0x3c00 && FloatToHalf(-2.0f) == 0xc000 && FloatToHalf(65504.0f) == 0x7bff, "half: exact values");
  CHECK(FloatToHalf(65520.0f) == 0x7c00 && FloatToHalf(1e-8f) == 0 && FloatToHalf(5.960464477539063e-8f) == 1, "half: overflow, underflow, smallest");
  CHECK(FloatToHalf(1.0f + 1.0f / 2048) == 0x3c00 && FloatToHalf(1.0f + 3.0f / 2048) == 0x3c02, "half: ties to even");
  bool roundTrip = true;
  for (uint32_t bits = 0; bits < 0x7c00; ++bits) roundTrip = roundTrip && FloatToHalf(HalfToFloat(static_cast<uint16_t>(bits))) == bits;
  CHECK(roundTrip, "half: every finite half survives a round trip through float");

  Tensor ids{DType::Int64, {1, 3}, std::vector<uint8_t>(24)};
  const int64_t values[3] = {0, 7, 32100};
  std::memcpy(ids.data.data(), values, 24);
  std::string error;
  const auto asFloat = ConvertTensor(ids, DType::Float32, {1, 3}, &error);
  CHECK(asFloat && ValuesOf(*asFloat) == std::vector<float>({0, 7, 32100}), "convert: int64 token ids to float32");
  const auto asInt = ConvertTensor(ids, DType::Int32, {1, 3}, &error);
  int32_t ints[3] = {};
  if (asInt) std::memcpy(ints, asInt->data.data(), 12);
  CHECK(asInt && ints[1] == 7 && ints[2] == 32100, "convert: int64 to int32");

  Tensor mask{DType::Float32, {1, 1, 2}, std::vector<uint8_t>(8)};
  const float maskValues[2] = {0, -1e4f};
  std::memcpy(mask.data.data(), maskValues, 8);
  const auto heads = ConvertTensor(mask, DType::Float32, {1, 3, 2}, &error);
  CHECK(heads && ValuesOf(*heads) == std::vector<float>({0, -1e4f, 0, -1e4f, 0, -1e4f}), "convert: a one-head mask repeated for every head");
  const auto half = ConvertTensor(mask, DType::Float16, {1, 1, 2}, &error);
  uint16_t halfBits[2] = {};
  if (half) std::memcpy(halfBits, half->data.data(), 4);
  CHECK(half && half->data.size() == 4 && halfBits[0] == 0 && HalfToFloat(halfBits[1]) == -10000.0f, "convert: float32 to float16");
  CHECK(!ConvertTensor(mask, DType::Float32, {1, 3, 4}, &error) && error.find("cannot become [1, 3, 4]") != std::string::npos,
        "convert: shapes that do not broadcast are refused: " + error);
  CHECK(!ConvertTensor(mask, DType::Float32, {3, 2}, &error), "convert: another rank is refused");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: runner_core_test <test/fixtures/runner-protocol>\n");
    return 2;
  }
  directory = argv[1];
  const std::vector<uint8_t> index = ReadFile("vectors.json");
  JsonError error;
  const auto vectors = ParseJson(std::string_view(reinterpret_cast<const char*>(index.data()), index.size()), &error);
  if (!vectors) {
    std::fprintf(stderr, "runner_core_test: cannot read %s/vectors.json: %s\n", argv[1], error.message.c_str());
    return 2;
  }
  TestJson();
  TestFrames(*vectors);
  TestBadFrames(*vectors);
  TestSessions(*vectors);
  TestBlocks();
  TestTokenAndLimits();
  TestConvert();
  std::printf("runner_core_test: %d checks, %d failed (%zu frame, %zu bad-frame and %zu session vectors)\n", checks, failures,
              vectors->find("frames")->asArray().size(), vectors->find("bad")->asArray().size(), vectors->find("sessions")->asArray().size());
  return failures == 0 ? 0 : 1;
}
