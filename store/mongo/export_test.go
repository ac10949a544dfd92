package mongo

// IsUniqueViolation exposes isUniqueViolation to the tests of package mongo_test.
var IsUniqueViolation = isUniqueViolation
