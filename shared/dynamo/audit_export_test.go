package dynamo

// RecordItem exposes a record's item to the tests' Tamperer, which writes items behind the
// log's back exactly as the log would have.
var RecordItem = recordItem
