// rapport schema: the JSON Schema of campaign files, for editors.
//
// YAML language servers validate and complete a file against a JSON Schema
// named in a `# yaml-language-server: $schema=...` comment. The schema says
// what the loader (rules/src/rule_loader.cpp) accepts: every key, where
// unknown keys are refused (additionalProperties: false), the trigger
// variants, durations and holdouts by pattern. It cannot check what needs the
// whole rule set (event types declared in another file, expressions): that
// is `rapport validate`. tests/cli/schema_test.cpp validates every shipped
// rule file and every example in docs/rule-language.md against it, so a
// change to the loader's format must change this text too.
#include <iostream>

#include "commands.h"

namespace rapport::cli {
namespace {

constexpr const char* kSchema = R"json({
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Rapport campaign file",
  "description": "A Rapport rule file: event types, aggregates, the loyalty ladder and campaigns (docs/rule-language.md). All files given to rapport form one rule set; run `rapport validate` for what a schema cannot check (expressions, names declared in other files).",
  "type": "object",
  "additionalProperties": false,
  "properties": {
    "version": {
      "description": "The format version; must be 1.",
      "const": 1
    },
    "event_types": {
      "description": "Event types beyond the built-in visit, purchase and referral. Each also defines customer.<plural> and customer.last_<type>.",
      "type": "array",
      "items": { "type": "string", "minLength": 1 }
    },
    "aggregates": {
      "description": "Customer numbers computed from events, read as customer.<name>.",
      "type": "object",
      "propertyNames": { "pattern": "^[A-Za-z_][A-Za-z0-9_]*$" },
      "additionalProperties": { "$ref": "#/$defs/aggregate" }
    },
    "ladder": {
      "description": "The loyalty ladder, lowest stage first; replaces the default one. A customer is in the last stage whose `when` holds; the first stage holds for everyone and takes no `when`.",
      "type": "array",
      "minItems": 1,
      "prefixItems": [ { "$ref": "#/$defs/first_stage" } ],
      "items": { "$ref": "#/$defs/stage" }
    },
    "campaigns": {
      "description": "The campaigns of this file.",
      "type": "array",
      "items": { "$ref": "#/$defs/campaign" }
    }
  },
  "$defs": {
    "duration": {
      "description": "A duration longer than zero: whole numbers glued to a unit, ms, s, m, h, d or w (30d, 12h, 90m, 1d12h).",
      "type": "string",
      "pattern": "^(?=.*[1-9])([0-9]+(ms|s|m|h|d|w))+$"
    },
    "expression": {
      "description": "A condition in Rapport's expression language, e.g. customer.purchases == 1 and event.amount > 100.",
      "type": ["string", "boolean"]
    },
    "event_type": {
      "description": "An event type: visit, purchase, referral or one declared under event_types.",
      "type": "string",
      "minLength": 1
    },
    "aggregate": {
      "type": "object",
      "additionalProperties": false,
      "required": ["function", "event"],
      "properties": {
        "function": { "enum": ["count", "sum", "min", "max", "last"] },
        "event": { "$ref": "#/$defs/event_type" },
        "field": {
          "description": "The event field, dotted for nested objects (cart.total). Required except for count.",
          "type": "string",
          "minLength": 1
        },
        "window": {
          "description": "Only events within this duration before the evaluation time count. Not for last.",
          "$ref": "#/$defs/duration"
        }
      },
      "allOf": [
        {
          "if": { "required": ["function"], "properties": { "function": { "not": { "const": "count" } } } },
          "then": { "required": ["field"] }
        },
        {
          "if": { "required": ["function"], "properties": { "function": { "const": "last" } } },
          "then": { "not": { "required": ["window"] } }
        }
      ]
    },
    "first_stage": {
      "type": "object",
      "additionalProperties": false,
      "required": ["stage"],
      "properties": {
        "stage": { "description": "The stage's name, read as customer.stage.", "type": "string" }
      }
    },
    "stage": {
      "type": "object",
      "additionalProperties": false,
      "required": ["stage", "when"],
      "properties": {
        "stage": { "description": "The stage's name, read as customer.stage.", "type": "string" },
        "when": {
          "description": "When the customer is in this stage; customer.* only (not event.*, customer.stage or coupon()).",
          "$ref": "#/$defs/expression"
        }
      }
    },
    "trigger": {
      "description": "What starts the campaign: exactly one of event, inactivity or stage.",
      "oneOf": [
        {
          "type": "object",
          "additionalProperties": false,
          "required": ["event"],
          "properties": {
            "event": { "description": "Considered on every event of this type.", "$ref": "#/$defs/event_type" }
          }
        },
        {
          "type": "object",
          "additionalProperties": false,
          "required": ["inactivity"],
          "properties": {
            "inactivity": {
              "description": "Considered when a customer has had no event of the type for the duration.",
              "type": "object",
              "additionalProperties": false,
              "required": ["event", "for"],
              "properties": {
                "event": { "$ref": "#/$defs/event_type" },
                "for": { "$ref": "#/$defs/duration" }
              }
            }
          }
        },
        {
          "type": "object",
          "additionalProperties": false,
          "required": ["stage"],
          "properties": {
            "stage": { "description": "Considered when an event moves the customer into this ladder stage.", "type": "string" }
          }
        }
      ]
    },
    "payload": {
      "description": "The data handed to the template: fixed values, \"{{ expression }}\" templates (always quoted), nested maps and lists.",
      "type": "object"
    },
    "action": {
      "type": "object",
      "additionalProperties": false,
      "required": ["channel", "template"],
      "properties": {
        "channel": { "description": "email, sms, push, ...: passed on as written.", "type": "string" },
        "template": { "description": "The template's name: passed on as written.", "type": "string" },
        "payload": { "$ref": "#/$defs/payload" }
      }
    },
    "campaign": {
      "type": "object",
      "additionalProperties": false,
      "required": ["id", "trigger", "actions"],
      "dependentRequired": { "priority": ["group"] },
      "properties": {
        "id": {
          "description": "Unique across all files: letters, digits, -, _ and .",
          "type": "string",
          "pattern": "^[A-Za-z0-9._-]+$"
        },
        "description": { "description": "Free text for people.", "type": "string" },
        "enabled": { "description": "false keeps the campaign in the file but never runs it.", "type": "boolean" },
        "trigger": { "$ref": "#/$defs/trigger" },
        "condition": {
          "description": "Must be true for the campaign to go on; sees the customer after the event was counted.",
          "$ref": "#/$defs/expression"
        },
        "delay": {
          "description": "Wait before sending; `recheck` is checked when the wait is over (customer.* only).",
          "type": "object",
          "additionalProperties": false,
          "required": ["for"],
          "properties": {
            "for": { "$ref": "#/$defs/duration" },
            "recheck": { "$ref": "#/$defs/expression" }
          }
        },
        "limits": {
          "description": "How often one customer may get the campaign; every limit must pass.",
          "type": "object",
          "additionalProperties": false,
          "properties": {
            "once_per_customer": { "type": "boolean" },
            "cooldown": { "description": "Not again within this long after the last firing.", "$ref": "#/$defs/duration" },
            "at_most": {
              "description": "At most `count` firings in any `per`.",
              "type": "object",
              "additionalProperties": false,
              "required": ["count", "per"],
              "properties": {
                "count": { "type": "integer", "minimum": 1, "maximum": 1000 },
                "per": { "$ref": "#/$defs/duration" }
              }
            }
          }
        },
        "holdout": {
          "description": "Share of customers kept as a control group: 10%, 2.5% or 10.",
          "anyOf": [
            { "type": "number", "minimum": 0, "maximum": 100 },
            { "type": "string", "pattern": "^(100(\\.0+)?|[0-9]{1,2}(\\.[0-9]+)?)%?$" }
          ]
        },
        "group": { "description": "Campaigns in one group compete: one fires per event.", "type": "string" },
        "priority": { "description": "Who wins inside a group (higher wins); needs group.", "type": "integer" },
        "goal": {
          "description": "What counts as the campaign working: an event of this type (where `condition` holds) within the duration after a firing.",
          "type": "object",
          "additionalProperties": false,
          "required": ["event", "within"],
          "properties": {
            "event": { "$ref": "#/$defs/event_type" },
            "condition": { "$ref": "#/$defs/expression" },
            "within": { "$ref": "#/$defs/duration" }
          }
        },
        "actions": {
          "description": "One or more messages to send.",
          "type": "array",
          "minItems": 1,
          "items": { "$ref": "#/$defs/action" }
        }
      }
    }
  }
}
)json";

}  // namespace

void AddSchemaCommand(CLI::App& app, int* exit_code) {
  CLI::App* cmd = app.add_subcommand("schema", "Print the JSON Schema of campaign files, for editors");
  cmd->footer(
      "Save it and point your editor's YAML language server at it:\n"
      "  rapport schema > rapport.schema.json\n"
      "  # yaml-language-server: $schema=./rapport.schema.json   (first line of a rule file)\n"
      "The schema checks keys and shapes as you type; `rapport validate` checks everything.");
  cmd->callback([exit_code] {
    std::cout << kSchema;
    std::cout.flush();
    *exit_code = std::cout ? 0 : 2;
  });
}

}  // namespace rapport::cli
