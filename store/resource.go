package store

// FieldType says how a record field is validated, stored and documented.
type FieldType string

const (
	FieldString   FieldType = "string"
	FieldEmail    FieldType = "email"
	FieldNumber   FieldType = "number"   // a finite number >= 0
	FieldCurrency FieldType = "currency" // ISO 4217 code, three letters, stored upper case
	FieldDate     FieldType = "date"     // YYYY-MM-DD or RFC 3339
	FieldEnum     FieldType = "enum"
	FieldRef      FieldType = "ref" // the id of a record of resource Ref in the same workspace
)

// Field describes one user-settable field of a resource.
type Field struct {
	Name        string
	Type        FieldType
	Required    bool
	Enum        []string // for FieldEnum
	Ref         string   // for FieldRef: the referenced resource's name
	MaxLen      int      // for string-like fields, in characters
	Default     any      // applied on create when the field is absent
	Description string
	// Filterable fields can be used as exact-match list filters
	// (?industry=Software); backends index them.
	Filterable bool
}

// Resource describes one kind of CRM record.
type Resource struct {
	Name     string // plural, as in the URL: "accounts"
	Singular string // "account"
	Fields   []Field
	// OneOfRequired lists fields of which at least one must be set.
	OneOfRequired []string
	// SearchFields are matched case-insensitively by the q list parameter.
	SearchFields []string
	Description  string
}

// Field returns the named field.
func (r *Resource) Field(name string) (Field, bool) {
	for _, f := range r.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

const (
	shortText = 255
	longText  = 2000
	bodyText  = 100_000
)

func str(name string, max int, desc string) Field {
	return Field{Name: name, Type: FieldString, MaxLen: max, Description: desc}
}

func required(f Field) Field { f.Required = true; return f }

func filterable(f Field) Field { f.Filterable = true; return f }

// ExternalIDField is the id a record has in another system. It is unique per
// workspace and resource among live records, and the key of upserts.
const ExternalIDField = "external_id"

func externalID() Field {
	return Field{Name: ExternalIDField, Type: FieldString, MaxLen: shortText, Filterable: true,
		Description: "The record's id in another system, unique per workspace among records of this type; " +
			"the key for upserts by external id."}
}

func email(desc string) Field {
	return Field{Name: "email", Type: FieldEmail, MaxLen: 254, Description: desc, Filterable: true}
}

func ref(name, resource, desc string) Field {
	return Field{Name: name, Type: FieldRef, Ref: resource, MaxLen: 64, Description: desc, Filterable: true}
}

func relatedFields() []Field {
	return []Field{
		ref("related_account_id", "accounts", "Id of the account this is about."),
		ref("related_contact_id", "contacts", "Id of the contact this is about."),
		ref("related_opportunity_id", "deals", "Id of the deal (opportunity) this is about."),
		ref("related_lead_id", "leads", "Id of the lead this is about."),
	}
}

// The CRM resources.
var (
	Accounts = &Resource{
		Name: "accounts", Singular: "account",
		Description: "A company or organisation you do business with.",
		Fields: []Field{
			required(str("name", shortText, "Company name.")),
			filterable(str("industry", shortText, "Industry, free text.")),
			str("website", longText, "Website URL."),
			email("Main email address."),
			str("phone", 64, "Main phone number."),
			filterable(str("country", shortText, "Country.")),
			externalID(),
		},
		SearchFields: []string{"name"},
	}
	Contacts = &Resource{
		Name: "contacts", Singular: "contact",
		Description:   "A person, usually working at an account.",
		OneOfRequired: []string{"first_name", "last_name"},
		Fields: []Field{
			str("first_name", shortText, "First name. first_name or last_name is required."),
			str("last_name", shortText, "Last name. first_name or last_name is required."),
			email("Email address."),
			str("phone", 64, "Phone number."),
			str("title", shortText, "Job title."),
			ref("account_id", "accounts", "Id of the account the contact works at."),
			externalID(),
		},
		SearchFields: []string{"first_name", "last_name"},
	}
	Leads = &Resource{
		Name: "leads", Singular: "lead",
		Description: "A prospective customer not yet qualified.",
		Fields: []Field{
			required(str("name", shortText, "Name of the person or company.")),
			email("Email address."),
			str("company", shortText, "Company name."),
			filterable(str("status", 64, "Lead status, free text (for example New, Contacted, Qualified).")),
			filterable(str("source", shortText, "Where the lead came from (for example Web, Vendor XYZ).")),
			externalID(),
		},
		SearchFields: []string{"name"},
	}
	Deals = &Resource{
		Name: "deals", Singular: "deal",
		Description: "A sales opportunity.",
		Fields: []Field{
			required(str("name", shortText, "Deal name.")),
			{Name: "value", Type: FieldNumber, Description: "Deal value, a number >= 0."},
			{Name: "currency", Type: FieldCurrency, Default: "USD", Filterable: true,
				Description: "ISO 4217 currency code, three letters. Defaults to USD."},
			filterable(str("stage", 64, "Pipeline stage, free text.")),
			ref("account_id", "accounts", "Id of the account the deal is with."),
			externalID(),
		},
		SearchFields: []string{"name"},
	}
	Activities = &Resource{
		Name: "activities", Singular: "activity",
		Description: "A call, email, meeting or task.",
		Fields: append([]Field{
			{Name: "type", Type: FieldEnum, Required: true, Enum: []string{"Call", "Email", "Meeting", "Task"},
				Filterable: true, Description: "Kind of activity."},
			required(str("title", shortText, "Short title.")),
			str("description", bodyText, "Longer description."),
			{Name: "due_date", Type: FieldDate, Description: "Due date, YYYY-MM-DD or an RFC 3339 timestamp."},
		}, append(relatedFields(), externalID())...),
		SearchFields: []string{"title"},
	}
	Notes = &Resource{
		Name: "notes", Singular: "note",
		Description: "A free-text note, optionally attached to other records.",
		Fields: append([]Field{
			str("title", shortText, "Title."),
			required(str("content", bodyText, "The note's text.")),
		}, append(relatedFields(), externalID())...),
		SearchFields: []string{"title"},
	}
)

// Resources lists every CRM resource in a stable order.
var Resources = []*Resource{Accounts, Contacts, Leads, Deals, Activities, Notes}

// Reference is a field of one resource that holds the id of another's record.
type Reference struct {
	Resource *Resource // the resource that has the field
	Field    string
}

// ReferencedBy lists the fields of every resource that refer to records of
// r: while a live record is referred to, it is not deleted.
func (r *Resource) ReferencedBy() []Reference {
	var out []Reference
	for _, other := range Resources {
		for _, f := range other.Fields {
			if f.Type == FieldRef && f.Ref == r.Name {
				out = append(out, Reference{Resource: other, Field: f.Name})
			}
		}
	}
	return out
}

// ResourceByName returns the resource with the given plural name.
func ResourceByName(name string) (*Resource, bool) {
	for _, r := range Resources {
		if r.Name == name {
			return r, true
		}
	}
	return nil, false
}

// ResourceBySingular returns the resource named in the singular ("deal").
func ResourceBySingular(name string) (*Resource, bool) {
	for _, r := range Resources {
		if r.Singular == name {
			return r, true
		}
	}
	return nil, false
}
