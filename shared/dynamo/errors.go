package dynamo

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
)

// MaxItemSize is DynamoDB's limit on one item: 400 KB, attribute names and values together.
const MaxItemSize = 400 * 1024

// Error is a failed DynamoDB call: the operation, the table and the key it concerned. Transient
// reports whether a retry may succeed (throttling, 5xx, connection errors, transaction
// conflicts); pipeline.IsTransient finds it with errors.As.
type Error struct {
	Op    string // e.g. "audit append", "change set update"
	Table string
	Key   string // the item or chain concerned, if one
	Err   error

	transient bool
}

func (e *Error) Error() string {
	s := "dynamo: " + e.Op
	if e.Table != "" {
		s += " (table " + e.Table + ")"
	}
	if e.Key != "" {
		s += " " + e.Key
	}
	return s + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Transient marks the error for pipeline.IsTransient: true when a retry may succeed.
func (e *Error) Transient() bool { return e.transient }

// TooLargeError says an item would exceed MaxItemSize. It is permanent: retrying cannot help.
type TooLargeError struct {
	Table string
	Key   string
	Size  int // estimated item size in bytes, as DynamoDB counts it
	Limit int
	What  string // what made it large, e.g. "change set document (gzip of 1.9 MB of JSON)"
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("dynamo: item %s in table %s is %d bytes, over DynamoDB's item limit of %d bytes: %s",
		e.Key, e.Table, e.Size, e.Limit, e.What)
}

// Permanent marks the error for pipeline.Classify (dead-letter, no retry).
func (e *TooLargeError) Permanent() bool { return true }

// ConflictError says an optimistic write (a change set update, an audit chain head) lost to
// concurrent writers Attempts times in a row. It is transient: a later retry normally wins.
type ConflictError struct {
	Op       string
	Table    string
	Key      string
	Attempts int
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("dynamo: %s (table %s) %s: still conflicting with concurrent writers after %d attempts",
		e.Op, e.Table, e.Key, e.Attempts)
}

// Transient marks the error for pipeline.IsTransient.
func (e *ConflictError) Transient() bool { return true }

// ValidationError says an input cannot be stored (empty key, key too long, bad JSON...).
type ValidationError struct {
	Op  string
	Msg string
}

func (e *ValidationError) Error() string { return "dynamo: " + e.Op + ": " + e.Msg }

// Permanent marks the error for pipeline.Classify.
func (e *ValidationError) Permanent() bool { return true }

// wrap turns an SDK error into an *Error, marked transient when a retry may succeed.
func wrap(op, table, key string, err error) error {
	if err == nil {
		return nil
	}
	return &Error{Op: op, Table: table, Key: key, Err: err, transient: IsTransient(err)}
}

// retryables is the SDK's own view of what is worth retrying: connection errors, HTTP 500,
// 502, 503 and 504, request timeouts and every throttling code (ProvisionedThroughputExceeded,
// ThrottlingException, RequestLimitExceeded, TransactionInProgressException...).
var retryables = retry.IsErrorRetryables(retry.DefaultRetryables)

// IsTransient reports whether err, returned by the DynamoDB SDK, is worth retrying: throttling,
// server errors (5xx), connection errors and timeouts, and transactions cancelled because of a
// conflicting transaction or throttling. A cancelled context is not; a condition check failure
// is not either (callers handle it as a result, not an error).
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var tce *types.TransactionCanceledException
	if errors.As(err, &tce) {
		for _, r := range tce.CancellationReasons {
			switch aws.ToString(r.Code) {
			case "TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded":
				return true
			}
		}
		return false
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "InternalServerError", "ServiceUnavailable", "TransactionConflictException":
			return true
		}
	}
	return retryables.IsErrorRetryable(err) == aws.TrueTernary
}

// isConditionFailed reports a failed ConditionExpression of a single-item write.
func isConditionFailed(err error) bool {
	var ccf *types.ConditionalCheckFailedException
	return errors.As(err, &ccf)
}
