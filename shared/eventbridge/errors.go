package eventbridge

import (
	"context"
	"errors"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// permanentError and transientError mark this package's errors for the pipeline's one
// classifier, which finds Permanent() and Transient() with errors.As: a permanent error is
// dead-lettered at once (a body that is no Karma message, a message over EventBridge's size
// limit), a transient one is worth retrying (throttling, a server fault).
type permanentError struct{ err error }

func (e *permanentError) Error() string   { return e.err.Error() }
func (e *permanentError) Unwrap() error   { return e.err }
func (e *permanentError) Permanent() bool { return true }

type transientError struct{ err error }

func (e *transientError) Error() string   { return e.err.Error() }
func (e *transientError) Unwrap() error   { return e.err }
func (e *transientError) Transient() bool { return true }

// permanent marks err so that pipeline.Classify dead-letters it.
func permanent(err error) error { return &permanentError{err: err} }

// transient marks err so that pipeline.IsTransient retries it.
func transient(err error) error { return &transientError{err: err} }

// isTransient reports throttling, server faults and connection errors (after the SDK's own
// retries); not a cancelled context.
func isTransient(err error) bool {
	if errors.Is(err, context.Canceled) {
		return false
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		if _, ok := retry.DefaultThrottleErrorCodes[ae.ErrorCode()]; ok {
			return true
		}
		if ae.ErrorFault() == smithy.FaultServer || slices.Contains([]string{"InternalException", "InternalFailure"}, ae.ErrorCode()) {
			return true
		}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && (re.HTTPStatusCode() >= 500 || re.HTTPStatusCode() == 429) {
		return true
	}
	var se *smithyhttp.RequestSendError
	return errors.As(err, &se) || errors.Is(err, context.DeadlineExceeded)
}
