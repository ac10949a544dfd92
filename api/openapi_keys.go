package api

import (
	"fmt"

	"github.com/hustack/hustack/store"
)

// Schemas of key administration.

func (b *docBuilder) keyFilterSchema() *oaSchema {
	return b.schema("KeyFilter", func() *oaSchema {
		return &oaSchema{Type: oaTypes{"object", "null"},
			Description: "A record filter (a vendor key): text field names of leads, contacts, accounts or deals, each with the one value " +
				"the key's records must have, such as {\"source\": \"Vendor XYZ\"}. The key reads only matching records, stamps every record it " +
				"creates with these values and cannot move a record out of the filter. Null for a key that sees the whole workspace.",
			AdditionalProperties: &oaAdditional{Schema: &oaSchema{Type: oaTypes{"string"}, MinLength: intp(1)}}}
	})
}

// keyInfoProps are the properties of a key as administrators see it.
func (b *docBuilder) keyInfoProps() []oaProp {
	statuses := []any{store.KeyActive, store.KeyExpiring, store.KeyExpired, store.KeyRevoked}
	return []oaProp{
		prop("id", "The key's id.", uuidType()),
		prop("workspace_id", "The workspace's id.", uuidType()),
		prop("name", "The key's name.", strType()),
		prop("prefix", "The first characters of the key, for recognising it; never the whole key.", strType()),
		prop("scopes", "The key's scopes.", &oaSchema{Type: oaTypes{"array"}, Items: b.scopeSchema()}),
		prop("filter", "The key's record filter; null for a key that sees the whole workspace.", b.keyFilterSchema()),
		prop("rate_limit", "The key's rate limit, as requests per period: 100/10s, 600/m.", strType()),
		prop("created_at", "When the key was created.", dateTime(false)),
		prop("expires_at", "When the key expires; null if never.", dateTime(true)),
		prop("revoked_at", "When the key was revoked; null if it was not.", dateTime(true)),
		prop("last_used_at", "When the key was last used (updated in batches); null if never.", dateTime(true)),
		prop("status", fmt.Sprintf("active; expiring when it expires within %d days; expired; or revoked.", int(store.ExpiringWindow.Hours()/24)),
			&oaSchema{Type: oaTypes{"string"}, Enum: statuses}),
		prop("requests_7d", "The key's requests over the last 7 days.", intType(0)),
	}
}

func (b *docBuilder) keyInfoSchema() *oaSchema {
	return b.schema("KeyInfo", func() *oaSchema {
		return object("An API key as administrators see it: never the key itself.", b.keyInfoProps()...)
	})
}

func (b *docBuilder) keyListSchema() *oaSchema {
	return b.schema("KeyList", func() *oaSchema {
		return object("The keys the calling key manages, oldest first.",
			oaProp{Name: "data", Schema: &oaSchema{Type: oaTypes{"array"}, Items: b.keyInfoSchema()}})
	})
}

// newKeyProp is the key itself, in the answer that shows it once.
func newKeyProp() oaProp {
	return prop("key", "The key itself (hs_live_...), shown this once only: it is not stored and cannot be shown again. "+
		"Null when the answer is replayed for a repeated Idempotency-Key.",
		&oaSchema{Type: oaTypes{"string", "null"}, Pattern: "^hs_live_[0-9A-Za-z]{40}$"})
}

func (b *docBuilder) newKeySchema() *oaSchema {
	return b.schema("NewKey", func() *oaSchema {
		return object("The new key, as KeyInfo, with the key itself.", append(b.keyInfoProps(), newKeyProp())...)
	})
}

func (b *docBuilder) rotatedKeySchema() *oaSchema {
	return b.schema("RotatedKey", func() *oaSchema {
		props := append(b.keyInfoProps(), newKeyProp(),
			prop("old_key", "The rotated key: it keeps working until its expires_at.", b.keyInfoSchema()))
		return object("The new key, as KeyInfo, with the key itself, and the old key.", props...)
	})
}

func (b *docBuilder) createKeySchema() *oaSchema {
	return b.schema("CreateKeyRequest", func() *oaSchema {
		nullableString := func() *oaSchema { return &oaSchema{Type: oaTypes{"string", "null"}} }
		s := object("A new API key.",
			prop("name", "The key's name, for people.", &oaSchema{Type: oaTypes{"string"}, MinLength: intp(1)}),
			prop("scopes", "The key's scopes: each must be a scope of the calling key.",
				&oaSchema{Type: oaTypes{"array"}, Items: b.scopeSchema(), MinItems: intp(1)}),
			prop("filter", "A record filter (a vendor key). A calling key with a filter passes it on: it may add fields, not change them.",
				b.keyFilterSchema()),
			prop("expires_at", "When the key expires (RFC 3339, in the future). Not with expires_in.", dateTime(true)),
			prop("expires_in", "How long the key lives: a duration such as 720h or 30d. Not with expires_at.", nullableString()),
			prop("rate_limit", "Requests per period, such as 600/m, 10/s, 5000/h or 100/10s; at most the calling key's, which is the default.",
				nullableString()),
		)
		s.Required = []string{"name", "scopes"}
		s.AdditionalProperties = noOtherProperties()
		return s
	})
}

func (b *docBuilder) rotateKeySchema() *oaSchema {
	return b.schema("RotateKeyRequest", func() *oaSchema {
		s := object("How long the old key keeps working after a rotation.",
			prop("expire_old_in", "\"now\", or a duration such as 168h or 7d, at most 90 days; by default 7 days.",
				&oaSchema{Type: oaTypes{"string", "null"}}))
		s.Required = nil
		s.AdditionalProperties = noOtherProperties()
		return s
	})
}

func (b *docBuilder) keyPolicySchema() *oaSchema {
	return b.schema("KeyPolicy", func() *oaSchema {
		s := object("A workspace's rules for its API keys. Zero values impose nothing.",
			prop("max_key_lifetime_days", "How many days ahead a new key may expire at most; 0: no maximum. When set, new keys must expire.", intType(0)),
			prop("require_expiry", "Whether new keys must have an expiry.", &oaSchema{Type: oaTypes{"boolean"}}),
			prop("disable_unused_after_days", "Keys unused for this many days are revoked by a periodic task; 0: off.", intType(0)),
		)
		s.AdditionalProperties = noOtherProperties()
		return s
	})
}
