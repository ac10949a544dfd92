package sqlite

import (
	"database/sql/driver"
	"strings"
	"unicode"
	"unicode/utf8"

	"modernc.org/sqlite"
)

// foldFunc is the SQL function that case-folds text for searches. SQLite's
// own LIKE, lower() and upper() know only ASCII case, so "zoë" would not
// find "ZOË"; this one knows Unicode, as MongoDB's case-insensitive regular
// expressions do.
const foldFunc = "hustack_fold"

func init() {
	sqlite.MustRegisterDeterministicScalarFunction(foldFunc, 1, func(_ *sqlite.FunctionContext, args []driver.Value) (driver.Value, error) {
		if s, ok := args[0].(string); ok {
			return fold(s), nil
		}
		return nil, nil // NULL, or a value no text column holds: no match
	})
}

// fold maps every character to one representative of the characters equal
// to it ignoring case (Unicode simple case folding, as Go's regexp (?i)
// uses): the smallest, so ASCII letters become upper case and, for example,
// the Kelvin sign becomes K.
func fold(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return strings.ToUpper(s) // allocates only if there is a lower-case letter
	}
	return strings.Map(foldRune, s)
}

func foldRune(r rune) rune {
	least := r
	for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
		least = min(least, f)
	}
	return least
}
