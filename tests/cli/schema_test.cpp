// `rapport schema`: the JSON Schema must accept every rule file the loader
// accepts (the standard pack, every example of docs/rule-language.md) and
// refuse what the loader refuses for its shape. Instances are the YAML read
// the way YAML language servers read it (YAML 1.2 core schema), and a small
// validator below implements the JSON Schema keywords the schema uses; it
// fails on any other keyword, so the schema cannot outgrow it unnoticed.
#include <simdjson.h>
#include <yaml-cpp/yaml.h>

#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <regex>
#include <set>
#include <sstream>

#include "rapport/engine/json_writer.h"
#include "rapport/rules/rule_set.h"
#include "temp_dir.h"

using namespace rapport::testing;
using simdjson::dom::element;
using simdjson::dom::element_type;

namespace {

// ------------------------------------------------------------ YAML to JSON --

void ToJson(const YAML::Node& n, rapport::JsonWriter& w) {
  static const std::regex kInt("^[-+]?[0-9]+$");
  static const std::regex kFloat("^[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?$");
  switch (n.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null: w.Null(); return;
    case YAML::NodeType::Sequence:
      w.BeginArray();
      for (const auto& item : n) ToJson(item, w);
      w.EndArray();
      return;
    case YAML::NodeType::Map:
      w.BeginObject();
      for (const auto& kv : n) {
        w.Key(kv.first.Scalar());
        ToJson(kv.second, w);
      }
      w.EndObject();
      return;
    case YAML::NodeType::Scalar: {
      const std::string& s = n.Scalar();
      if (n.Tag() != "?") {  // quoted or block: always a string
        w.String(s);
      } else if (s == "null" || s == "Null" || s == "NULL" || s == "~") {
        w.Null();
      } else if (s == "true" || s == "True" || s == "TRUE" || s == "false" || s == "False" || s == "FALSE") {
        w.Bool(s[0] == 't' || s[0] == 'T');
      } else if (std::regex_match(s, kInt) && s.size() < 18) {
        w.Int(std::stoll(s));
      } else if (std::regex_match(s, kFloat)) {
        w.Number(std::stod(s));
      } else {
        w.String(s);
      }
      return;
    }
  }
}

std::string YamlToJson(const std::string& yaml) {
  std::string out;
  rapport::JsonWriter w(&out);
  ToJson(YAML::Load(yaml), w);
  return out;
}

// -------------------------------------------------------- the validator ---

class Validator {
 public:
  explicit Validator(element root) : root_(root) {}

  // Appends every violation to *errors ("path: what"); true when valid.
  bool Validate(element schema, element value, const std::string& path, std::vector<std::string>* errors) {
    if (schema.type() == element_type::BOOL) {
      if (!bool(schema)) errors->push_back(path + ": nothing is allowed here");
      return bool(schema);
    }
    const size_t before = errors->size();
    simdjson::dom::object keywords = schema;
    for (auto [key, sub] : keywords) {
      static const std::set<std::string_view> kAnnotations = {"$schema", "$id",     "title",   "description",
                                                              "$defs",   "default", "examples"};
      static const std::set<std::string_view> kApplied = {"then", "else"};  // read with `if`
      if (kAnnotations.count(key) || kApplied.count(key)) continue;
      if (key == "$ref") {
        Validate(Resolve(std::string_view(sub)), value, path, errors);
      } else if (key == "type") {
        bool ok = false;
        if (sub.type() == element_type::STRING) {
          ok = HasType(value, std::string_view(sub));
        } else {
          for (element t : simdjson::dom::array(sub)) ok |= HasType(value, std::string_view(t));
        }
        if (!ok) errors->push_back(path + ": wrong type, expected " + simdjson::to_string(sub));
      } else if (key == "properties") {
        if (!value.is_object()) continue;
        for (auto [name, prop_schema] : simdjson::dom::object(sub)) {
          element v;
          if (value[name].get(v) == simdjson::SUCCESS) Validate(prop_schema, v, path + "." + std::string(name), errors);
        }
      } else if (key == "additionalProperties") {
        if (!value.is_object()) continue;
        simdjson::dom::object props;
        const bool has_props = schema["properties"].get(props) == simdjson::SUCCESS;
        for (auto [name, v] : simdjson::dom::object(value)) {
          element known;
          if (has_props && props[name].get(known) == simdjson::SUCCESS) continue;
          if (sub.type() == element_type::BOOL && !bool(sub)) {
            errors->push_back(path + ": unknown key `" + std::string(name) + "`");
          } else {
            Validate(sub, v, path + "." + std::string(name), errors);
          }
        }
      } else if (key == "propertyNames") {
        if (!value.is_object()) continue;
        for (auto [name, v] : simdjson::dom::object(value)) {
          std::string json = "\"" + std::string(name) + "\"";
          simdjson::dom::parser p;
          element name_value = p.parse(json);
          Validate(sub, name_value, path + "[key " + std::string(name) + "]", errors);
        }
      } else if (key == "required") {
        if (!value.is_object()) continue;
        for (element r : simdjson::dom::array(sub)) {
          element v;
          if (value[std::string_view(r)].get(v) != simdjson::SUCCESS) {
            errors->push_back(path + ": missing `" + std::string(std::string_view(r)) + "`");
          }
        }
      } else if (key == "dependentRequired") {
        if (!value.is_object()) continue;
        for (auto [name, needs] : simdjson::dom::object(sub)) {
          element v;
          if (value[name].get(v) != simdjson::SUCCESS) continue;
          for (element r : simdjson::dom::array(needs)) {
            if (value[std::string_view(r)].get(v) != simdjson::SUCCESS) {
              errors->push_back(path + ": `" + std::string(name) + "` needs `" + std::string(std::string_view(r)) +
                                "`");
            }
          }
        }
      } else if (key == "items" || key == "prefixItems" || key == "minItems") {
        if (!value.is_array()) continue;
        simdjson::dom::array items = value;
        size_t prefix = 0;
        simdjson::dom::array prefix_schemas;
        if (schema["prefixItems"].get(prefix_schemas) == simdjson::SUCCESS) prefix = prefix_schemas.size();
        size_t i = 0;
        for (element item : items) {
          const std::string at = path + "[" + std::to_string(i) + "]";
          if (key == "prefixItems" && i < prefix) Validate(prefix_schemas.at(i).value(), item, at, errors);
          if (key == "items" && i >= prefix) Validate(sub, item, at, errors);
          ++i;
        }
        if (key == "minItems" && items.size() < uint64_t(sub)) errors->push_back(path + ": too few items");
      } else if (key == "enum") {
        bool any = false;
        for (element e : simdjson::dom::array(sub)) any |= Equal(e, value);
        if (!any) errors->push_back(path + ": not one of " + simdjson::to_string(sub));
      } else if (key == "const") {
        if (!Equal(sub, value)) errors->push_back(path + ": must be " + simdjson::to_string(sub));
      } else if (key == "pattern") {
        if (!value.is_string()) continue;
        std::regex re(std::string(std::string_view(sub)), std::regex::ECMAScript);
        const std::string s{std::string_view(value)};
        if (!std::regex_search(s, re))
          errors->push_back(path + ": `" + s + "` does not match " + simdjson::to_string(sub));
      } else if (key == "minLength") {
        if (value.is_string() && std::string_view(value).size() < uint64_t(sub))
          errors->push_back(path + ": too short");
      } else if (key == "minimum" || key == "maximum") {
        if (!value.is_number()) continue;
        const double x = Number(value), limit = Number(sub);
        if (key == "minimum" ? x < limit : x > limit) errors->push_back(path + ": out of range");
      } else if (key == "oneOf" || key == "anyOf" || key == "allOf") {
        size_t passed = 0, count = 0;
        for (element option : simdjson::dom::array(sub)) {
          std::vector<std::string> ignored;
          passed += Validate(option, value, path, key == "allOf" ? errors : &ignored) ? 1 : 0;
          ++count;
        }
        if (key == "oneOf" && passed != 1) {
          errors->push_back(path + ": matches " + std::to_string(passed) + " of the oneOf alternatives, not 1");
        }
        if (key == "anyOf" && passed == 0) errors->push_back(path + ": matches none of the anyOf alternatives");
      } else if (key == "not") {
        std::vector<std::string> ignored;
        if (Validate(sub, value, path, &ignored)) errors->push_back(path + ": matches a `not`");
      } else if (key == "if") {
        std::vector<std::string> ignored;
        element branch;
        const char* which = Validate(sub, value, path, &ignored) ? "then" : "else";
        if (schema[which].get(branch) == simdjson::SUCCESS) Validate(branch, value, path, errors);
      } else {
        FAIL("the schema uses `" << key << "`, which this test's validator does not implement");
      }
    }
    return errors->size() == before;
  }

 private:
  element Resolve(std::string_view ref) {
    REQUIRE(ref.substr(0, 8) == "#/$defs/");
    element target;
    REQUIRE(root_["$defs"][ref.substr(8)].get(target) == simdjson::SUCCESS);
    return target;
  }
  static double Number(element e) {
    if (e.type() == element_type::INT64) return double(int64_t(e));
    if (e.type() == element_type::UINT64) return double(uint64_t(e));
    return double(e);
  }
  static bool HasType(element v, std::string_view type) {
    if (type == "object") return v.is_object();
    if (type == "array") return v.is_array();
    if (type == "string") return v.is_string();
    if (type == "boolean") return v.is_bool();
    if (type == "null") return v.is_null();
    if (type == "number") return v.is_number();
    if (type == "integer") return v.is_number() && std::floor(Number(v)) == Number(v);
    FAIL("unknown type " << type);
    return false;
  }
  static bool Equal(element a, element b) {
    if (a.is_number() && b.is_number()) return Number(a) == Number(b);
    return simdjson::to_string(a) == simdjson::to_string(b);
  }
  element root_;
};

struct Schema {
  std::string text;
  simdjson::dom::parser parser;
  element root;
  Schema() {
    REQUIRE(RunCommand(RapportBinary() + " schema", &text) == 0);
    REQUIRE(parser.parse(text).get(root) == simdjson::SUCCESS);
  }
  // The violations of a YAML rule file; empty when it is valid.
  std::vector<std::string> Check(const std::string& yaml) {
    std::string json = YamlToJson(yaml);
    simdjson::dom::parser instance_parser;
    element instance = instance_parser.parse(json);
    std::vector<std::string> errors;
    Validator(root).Validate(root, instance, "$", &errors);
    return errors;
  }
};

std::string Joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

// The ```yaml blocks of a Markdown file, with the line each starts on.
std::vector<std::pair<int, std::string>> YamlBlocks(const std::string& markdown) {
  std::vector<std::pair<int, std::string>> blocks;
  std::istringstream in(markdown);
  std::string line, block;
  int number = 0, start = 0;
  bool inside = false;
  while (std::getline(in, line)) {
    ++number;
    if (!inside && line == "```yaml") {
      inside = true;
      start = number + 1;
      block.clear();
    } else if (inside && line == "```") {
      inside = false;
      blocks.emplace_back(start, block);
    } else if (inside) {
      block += line + "\n";
    }
  }
  return blocks;
}

bool LoaderAccepts(const std::string& name, const std::string& yaml) {
  return rapport::rules::LoadRulesFromStrings({{name, yaml}}).rules != nullptr;
}

}  // namespace

TEST_CASE("rapport schema prints a draft 2020-12 JSON Schema of campaign files") {
  Schema schema;
  CHECK(std::string_view(schema.root["$schema"]) == "https://json-schema.org/draft/2020-12/schema");
  CHECK(schema.text.back() == '\n');
  simdjson::dom::object campaign = schema.root["$defs"]["campaign"]["properties"];
  for (const char* key : {"id", "description", "enabled", "trigger", "condition", "delay", "limits", "holdout", "group",
                          "priority", "actions"}) {
    element e;
    CHECK(campaign[key].get(e) == simdjson::SUCCESS);
  }
}

TEST_CASE("every rule file the loader accepts in rules/packs and docs/rule-language.md fits the schema") {
  namespace fs = std::filesystem;
  Schema schema;
  int checked = 0;
  for (const auto& entry : fs::recursive_directory_iterator(SourcePath("rules/packs"))) {
    const std::string path = entry.path().string();
    if (!entry.is_regular_file() || (entry.path().extension() != ".yaml" && entry.path().extension() != ".yml")) {
      continue;
    }
    if (path.ends_with(".test.yaml") || path.ends_with(".test.yml")) continue;
    const std::string yaml = ReadFile(path);
    REQUIRE(LoaderAccepts(path, yaml));
    INFO(path);
    CHECK(Joined(schema.Check(yaml)).empty());
    ++checked;
  }
  CHECK(checked >= 3);

  const std::string doc = ReadFile(SourcePath("docs/rule-language.md"));
  int examples = 0, broken = 0;
  for (const auto& [line, yaml] : YamlBlocks(doc)) {
    INFO("docs/rule-language.md:" << line << "\n" << yaml);
    if (LoaderAccepts("example.yaml", yaml)) {
      CHECK(Joined(schema.Check(yaml)).empty());
      ++examples;
    } else if (yaml.find("templte:") != std::string::npos) {
      // The example that is broken on purpose: its shape errors show here too.
      const std::string errors = Joined(schema.Check(yaml));
      CHECK(errors.find("unknown key `templte`") != std::string::npos);
      CHECK(errors.find("$.campaigns[0].holdout") != std::string::npos);
      CHECK(errors.find("$.campaigns[0].limits.cooldown: `30 days` does not match") != std::string::npos);
      ++broken;
    }
  }
  CHECK(examples >= 20);
  CHECK(broken == 1);
}

TEST_CASE("the schema refuses what the loader refuses for its shape, and accepts its other spellings") {
  Schema schema;
  const std::string head = "version: 1\ncampaigns:\n  - id: c\n    trigger: {event: visit}\n";
  const std::string action = "    actions: [{channel: email, template: t}]\n";
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"unknown top-level key", "version: 1\ncolour: red\n"},
      {"unknown campaign key", head + "    colour: red\n" + action},
      {"misspelt action key", head + "    actions: [{channel: email, templte: t}]\n"},
      {"action without template", head + "    actions: [{channel: email}]\n"},
      {"no actions", head + "    actions: []\n"},
      {"no trigger", "campaigns:\n  - id: c\n" + action},
      {"no id", "campaigns:\n  - trigger: {event: visit}\n" + action},
      {"two trigger kinds", "campaigns:\n  - id: c\n    trigger: {event: visit, stage: client}\n" + action},
      {"empty trigger", "campaigns:\n  - id: c\n    trigger: {}\n" + action},
      {"inactivity without for", "campaigns:\n  - id: c\n    trigger: {inactivity: {event: visit}}\n" + action},
      {"duration with a space", head + "    limits: {cooldown: 30 days}\n" + action},
      {"duration without unit", head + "    delay: {for: 7}\n" + action},
      {"zero duration", head + "    limits: {cooldown: 0d}\n" + action},
      {"unknown limit", head + "    limits: {once: true}\n" + action},
      {"at_most without per", head + "    limits: {at_most: {count: 2}}\n" + action},
      {"at_most count 0", head + "    limits: {at_most: {count: 0, per: 30d}}\n" + action},
      {"holdout over 100", head + "    holdout: 120%\n" + action},
      {"enabled: yes", head + "    enabled: yes\n" + action},
      {"priority without group", head + "    priority: 2\n" + action},
      {"delay without for", head + "    delay: {recheck: customer.visits > 1}\n" + action},
      {"bad campaign id", "campaigns:\n  - id: 'a b'\n    trigger: {event: visit}\n" + action},
      {"version 2", "version: 2\n"},
      {"event_types not a list", "event_types: cart\n"},
      {"unknown aggregate function", "aggregates: {x: {function: median, event: purchase, field: amount}}\n"},
      {"sum without field", "aggregates: {x: {function: sum, event: purchase}}\n"},
      {"last with a window", "aggregates: {x: {function: last, event: purchase, field: a, window: 7d}}\n"},
      {"bad aggregate name", "aggregates: {1x: {function: count, event: visit}}\n"},
      {"first stage with when", "ladder: [{stage: a, when: customer.visits > 1}]\n"},
      {"later stage without when", "ladder: [{stage: a}, {stage: b}]\n"},
      {"empty ladder", "ladder: []\n"},
  };
  for (const auto& [what, yaml] : refused) {
    INFO(what << "\n" << yaml);
    CHECK_FALSE(LoaderAccepts("r.yaml", yaml));
    CHECK_FALSE(schema.Check(yaml).empty());
  }
  const std::vector<std::pair<std::string, std::string>> accepted = {
      {"holdout as a number", head + "    holdout: 12.5\n" + action},
      {"holdout as a quoted percentage", head + "    holdout: '2.5%'\n" + action},
      {"holdout 100%", head + "    holdout: 100%\n" + action},
      {"negative priority", head + "    group: g\n    priority: -3\n" + action},
      {"compound duration", head + "    delay: {for: 1d12h}\n" + action},
      {"milliseconds", head + "    limits: {cooldown: 1500ms}\n" + action},
      {"a boolean condition", head + "    condition: true\n" + action},
      {"a payload of every kind", head + "    actions:\n      - channel: email\n        template: t\n        payload:\n"
                                         "          n: 10\n          s: text\n          b: false\n          z: ~\n"
                                         "          l: [1, \"{{ customer.visits }}\"]\n          o: {k: v}\n"},
      {"a count without field", "aggregates: {visits_7d: {function: count, event: visit, window: 7d}}\n"},
      {"a ladder", "ladder: [{stage: a}, {stage: b, when: customer.visits > 1}]\n"},
      {"an empty campaigns list", "version: 1\ncampaigns: []\n"},
  };
  for (const auto& [what, yaml] : accepted) {
    INFO(what << "\n" << yaml << Joined(schema.Check(yaml)));
    CHECK(LoaderAccepts("r.yaml", yaml));
    CHECK(schema.Check(yaml).empty());
  }
}
