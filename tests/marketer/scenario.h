// A small handwritten rule set with one campaign per limit, for the tests of
// `rapport test` and `rapport explain`.
#pragma once

namespace rapport::testing {

inline constexpr char kScenarioRules[] = R"(version: 1
event_types: [cart, wishlist, signup]
campaigns:
  - id: sale-nudge
    trigger: {event: visit}
    condition: event.page == "/sale" and (customer.purchases == 0 or event.coupon == "STAFF") and not customer.stage == "partner"
    limits: {cooldown: 3d}
    actions:
      - channel: push
        template: sale
        payload: {visits: "{{ customer.visits }}", page: "{{ event.page }}"}
  - id: cart-cap
    trigger: {event: cart}
    limits: {at_most: {count: 2, per: 7d}}
    actions: [{channel: push, template: cart}]
  - id: referral-thanks
    trigger: {event: referral}
    limits: {once_per_customer: true}
    actions: [{channel: email, template: referral-thanks, payload: {code: "{{ coupon('REF') }}"}}]
  - id: thanks-vip
    trigger: {event: purchase}
    condition: event.amount > 500
    group: thanks
    priority: 10
    actions: [{channel: phone, template: vip, payload: {amount: "{{ event.amount }}"}}]
  - id: thanks-standard
    trigger: {event: purchase}
    group: thanks
    priority: 1
    actions: [{channel: email, template: thanks, payload: {amount: "{{ event.amount }}"}}]
  - id: wishlist-reminder
    trigger: {event: wishlist}
    delay:
      for: 1d
      recheck: customer.last_purchase == null or customer.last_purchase < customer.last_wishlist
    actions: [{channel: email, template: wishlist}]
  - id: signup-welcome
    trigger: {event: signup}
    holdout: 100%
    actions: [{channel: email, template: welcome}]
)";

}  // namespace rapport::testing
