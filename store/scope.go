package store

import (
	"fmt"
	"slices"
	"sort"
	"strings"
)

// Scope is a permission carried by an API key, such as "read:accounts".
type Scope string

// ScopeUsage lets a key read the workspace's usage counts and logs.
const ScopeUsage Scope = "read:usage"

// ScopeAdminKeys lets a key manage the workspace's keys and key policy. Only
// a key that has it (or the operator's command line) can grant it.
const ScopeAdminKeys Scope = "admin:keys"

// ReadScope and WriteScope return the scopes guarding a resource.
func ReadScope(resource string) Scope  { return Scope("read:" + resource) }
func WriteScope(resource string) Scope { return Scope("write:" + resource) }

// AllScopes lists every scope a key can be given, in a stable order.
func AllScopes() []Scope {
	var out []Scope
	for _, r := range Resources {
		out = append(out, ReadScope(r.Name), WriteScope(r.Name))
	}
	return append(out, ScopeUsage, ScopeAdminKeys, ScopeReadWebhooks, ScopeWriteWebhooks)
}

// ValidScope reports whether s is a known scope.
func ValidScope(s Scope) bool { return slices.Contains(AllScopes(), s) }

// ParseScopes parses a comma-separated scope list ("read:accounts,write:notes"),
// rejecting unknown names and removing duplicates. The result is sorted.
func ParseScopes(s string) ([]Scope, error) {
	var names []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			names = append(names, part)
		}
	}
	return NormalizeScopes(names)
}

// NormalizeScopes validates scope names, removes duplicates and sorts them.
func NormalizeScopes(names []string) ([]Scope, error) {
	if len(names) == 0 {
		return nil, FieldError("scopes", "at least one scope is required (known scopes: %s)", scopeList())
	}
	seen := map[Scope]bool{}
	var out []Scope
	for _, n := range names {
		sc := Scope(strings.TrimSpace(n))
		if !ValidScope(sc) {
			return nil, FieldError("scopes", "unknown scope %q (known scopes: %s)", n, scopeList())
		}
		if !seen[sc] {
			seen[sc] = true
			out = append(out, sc)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

func scopeList() string {
	var s []string
	for _, sc := range AllScopes() {
		s = append(s, string(sc))
	}
	return strings.Join(s, ", ")
}

// Action is what an operation does to its resource.
type Action string

const (
	ActionList   Action = "list"
	ActionGet    Action = "get"
	ActionCreate Action = "create"
	ActionUpdate Action = "update"
	ActionDelete Action = "delete"
	// ActionUpsert creates or updates the record with a given external_id.
	ActionUpsert      Action = "upsert"
	ActionBatchCreate Action = "batch_create"
	ActionBatchUpsert Action = "batch_upsert"
	// Operations not about one CRM resource.
	ActionWhoami      Action = "whoami"
	ActionUsageCounts Action = "usage_counts"
	ActionUsageLogs   Action = "usage_logs"
	// Key administration.
	ActionListKeys     Action = "list_keys"
	ActionGetKey       Action = "get_key"
	ActionCreateKey    Action = "create_key"
	ActionRevokeKey    Action = "revoke_key"
	ActionRotateKey    Action = "rotate_key"
	ActionGetPolicy    Action = "get_key_policy"
	ActionUpdatePolicy Action = "update_key_policy"
	// Webhook subscriptions and their deliveries.
	ActionListWebhooks   Action = "list_webhooks"
	ActionGetWebhook     Action = "get_webhook"
	ActionCreateWebhook  Action = "create_webhook"
	ActionUpdateWebhook  Action = "update_webhook"
	ActionDeleteWebhook  Action = "delete_webhook"
	ActionListDeliveries Action = "list_webhook_deliveries"
	ActionReplayDelivery Action = "replay_webhook_delivery"
	ActionTestWebhook    Action = "test_webhook"
)

// Operation is one entry of the operation table: every scoped operation the
// product offers, with the one scope it requires. REST routes, MCP tools and
// the API documentation are all derived from this table, and Scoped checks
// the same scope again when the operation runs.
type Operation struct {
	// Name is the operation's stable identifier, also its MCP tool name
	// (snake_case verb_noun: "list_accounts").
	Name     string
	Action   Action
	Resource *Resource // nil for operations not about a CRM resource
	Scope    Scope     // "" when any valid key may call it
	ReadOnly bool
	Summary  string
}

// Operations is the operation table.
var Operations = buildOperations()

func buildOperations() []Operation {
	var ops []Operation
	for _, r := range Resources {
		ops = append(ops,
			Operation{Name: "list_" + r.Name, Action: ActionList, Resource: r, Scope: ReadScope(r.Name), ReadOnly: true,
				Summary: fmt.Sprintf("List %s in the workspace, newest first.", r.Name)},
			Operation{Name: "get_" + r.Singular, Action: ActionGet, Resource: r, Scope: ReadScope(r.Name), ReadOnly: true,
				Summary: fmt.Sprintf("Get one %s by id.", r.Singular)},
			Operation{Name: "create_" + r.Singular, Action: ActionCreate, Resource: r, Scope: WriteScope(r.Name),
				Summary: fmt.Sprintf("Create %s %s.", article(r.Singular), r.Singular)},
			Operation{Name: "update_" + r.Singular, Action: ActionUpdate, Resource: r, Scope: WriteScope(r.Name),
				Summary: fmt.Sprintf("Update some fields of %s %s; null clears an optional field.", article(r.Singular), r.Singular)},
			Operation{Name: "delete_" + r.Singular, Action: ActionDelete, Resource: r, Scope: WriteScope(r.Name),
				Summary: fmt.Sprintf("Delete %s %s. Refused while other records reference it.", article(r.Singular), r.Singular)},
			Operation{Name: "upsert_" + r.Singular, Action: ActionUpsert, Resource: r, Scope: WriteScope(r.Name),
				Summary: fmt.Sprintf("Create or update the %s with the given external_id.", r.Singular)},
			Operation{Name: "batch_create_" + r.Name, Action: ActionBatchCreate, Resource: r, Scope: WriteScope(r.Name),
				Summary: fmt.Sprintf("Create 1 to %d %s, each validated and created independently.", MaxBatch, r.Name)},
			Operation{Name: "batch_upsert_" + r.Name, Action: ActionBatchUpsert, Resource: r, Scope: WriteScope(r.Name),
				Summary: fmt.Sprintf("Create or update 1 to %d %s by external_id, each independently.", MaxBatch, r.Name)},
		)
	}
	return append(ops,
		Operation{Name: "whoami", Action: ActionWhoami, ReadOnly: true,
			Summary: "Describe the calling API key: its workspace, name, scopes and expiry."},
		Operation{Name: "get_usage", Action: ActionUsageCounts, Scope: ScopeUsage, ReadOnly: true,
			Summary: "Count the workspace's API requests grouped by day, key, route or status."},
		Operation{Name: "list_usage_logs", Action: ActionUsageLogs, Scope: ScopeUsage, ReadOnly: true,
			Summary: "List the workspace's API request log entries, newest first."},
		Operation{Name: "list_api_keys", Action: ActionListKeys, Scope: ScopeAdminKeys, ReadOnly: true,
			Summary: "List the workspace's API keys with status, last use and request counts (never the keys themselves)."},
		Operation{Name: "get_api_key", Action: ActionGetKey, Scope: ScopeAdminKeys, ReadOnly: true,
			Summary: "Get one API key by id (never the key itself)."},
		Operation{Name: "create_api_key", Action: ActionCreateKey, Scope: ScopeAdminKeys,
			Summary: "Create an API key with a subset of the caller's scopes; the key is returned once."},
		Operation{Name: "revoke_api_key", Action: ActionRevokeKey, Scope: ScopeAdminKeys,
			Summary: "Revoke an API key at once."},
		Operation{Name: "rotate_api_key", Action: ActionRotateKey, Scope: ScopeAdminKeys,
			Summary: "Replace an API key with a new one (same name, scopes, filter and limit); the old one keeps working for an overlap."},
		Operation{Name: "get_key_policy", Action: ActionGetPolicy, Scope: ScopeAdminKeys, ReadOnly: true,
			Summary: "Get the workspace's key policy."},
		Operation{Name: "update_key_policy", Action: ActionUpdatePolicy, Scope: ScopeAdminKeys,
			Summary: "Change the workspace's key policy: maximum lifetime, mandatory expiry, disabling unused keys."},
		Operation{Name: "list_webhooks", Action: ActionListWebhooks, Scope: ScopeReadWebhooks, ReadOnly: true,
			Summary: "List the workspace's webhook subscriptions with their status (never their signing secrets)."},
		Operation{Name: "get_webhook", Action: ActionGetWebhook, Scope: ScopeReadWebhooks, ReadOnly: true,
			Summary: "Get one webhook subscription by id."},
		Operation{Name: "create_webhook", Action: ActionCreateWebhook, Scope: ScopeWriteWebhooks,
			Summary: "Subscribe a URL to events such as deal.created, account.* or *; the signing secret is returned once."},
		Operation{Name: "update_webhook", Action: ActionUpdateWebhook, Scope: ScopeWriteWebhooks,
			Summary: "Change a webhook subscription's url, events, description, or turn it off and on."},
		Operation{Name: "delete_webhook", Action: ActionDeleteWebhook, Scope: ScopeWriteWebhooks,
			Summary: "Delete a webhook subscription (unsubscribe); pending deliveries are not sent."},
		Operation{Name: "list_webhook_deliveries", Action: ActionListDeliveries, Scope: ScopeReadWebhooks, ReadOnly: true,
			Summary: "List a webhook subscription's deliveries, newest first: status, attempts, response codes, next attempt."},
		Operation{Name: "replay_webhook_delivery", Action: ActionReplayDelivery, Scope: ScopeWriteWebhooks,
			Summary: "Send a finished delivery's event again, as a new delivery with the same webhook-id."},
		Operation{Name: "test_webhook", Action: ActionTestWebhook, Scope: ScopeWriteWebhooks,
			Summary: "Send a ping event to a webhook subscription and return the delivery to follow."},
	)
}

// OperationByName returns the operation with the given name.
func OperationByName(name string) (Operation, bool) {
	for _, op := range Operations {
		if op.Name == name {
			return op, true
		}
	}
	return Operation{}, false
}

// operationFor returns the table entry for an action on a resource (nil for
// the operations not about a resource).
func operationFor(a Action, r *Resource) Operation {
	for _, op := range Operations {
		if op.Action == a && op.Resource == r {
			return op
		}
	}
	panic(fmt.Sprintf("store: no operation %s for resource %s", a, r.Name))
}

func article(word string) string {
	if strings.ContainsRune("aeiou", rune(word[0])) {
		return "an"
	}
	return "a"
}
