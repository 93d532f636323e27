package sqs

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/usekarma/karma/shared/queue"
)

// transientError marks an error worth retrying later: Transient() is what pipeline.IsTransient
// looks for with errors.As, so this package marks its errors without importing the runtime.
type transientError struct{ err error }

func (e *transientError) Error() string   { return e.err.Error() }
func (e *transientError) Unwrap() error   { return e.err }
func (e *transientError) Transient() bool { return true }

// transient marks err as worth retrying later.
func transient(err error) error { return &transientError{err: err} }

// isMarkedTransient reports whether wrap (or sendBatch) marked err transient.
func isMarkedTransient(err error) bool {
	var t *transientError
	return errors.As(err, &t)
}

// wrap names the operation and queue of an SDK error and sorts it:
//   - an invalid or expired receipt handle matches queue.ErrStaleReceipt;
//   - throttling, server faults (5xx) and connection errors are marked transient (Transient()
//     true, for pipeline.IsTransient; the SDK's own retryer has already tried them a few times);
//   - cancellation and everything else are returned wrapped as they are.
func wrap(op, name string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case isReceiptError(err):
		return fmt.Errorf("sqs %s %s: %w: %w", op, name, queue.ErrStaleReceipt, err)
	case IsTransient(err):
		return transient(fmt.Errorf("sqs %s %s: %w", op, name, err))
	}
	return fmt.Errorf("sqs %s %s: %w", op, name, err)
}

// isReceiptError reports whether SQS refused a receipt handle: malformed, of another queue, of
// a message that is gone, or expired.
func isReceiptError(err error) bool {
	var invalid *types.ReceiptHandleIsInvalid
	var badID *types.InvalidIdFormat
	if errors.As(err, &invalid) || errors.As(err, &badID) {
		return true
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	switch code := ae.ErrorCode(); {
	case strings.HasSuffix(code, "ReceiptHandleIsInvalid"), strings.HasSuffix(code, "InvalidIdFormat"):
		return true
	case strings.HasSuffix(code, "InvalidParameterValue"):
		// AWS: "Value ... for parameter ReceiptHandle is invalid. Reason: The receipt handle has expired."
		msg := strings.ToLower(ae.ErrorMessage())
		return strings.Contains(msg, "receipthandle") || strings.Contains(msg, "receipt handle")
	}
	return false
}

// isNotInflight reports SQS's MessageNotInflight: the receipt is current but its visibility
// timeout has run out (nobody received the message again yet).
func isNotInflight(err error) bool {
	var e *types.MessageNotInflight
	if errors.As(err, &e) {
		return true
	}
	var ae smithy.APIError
	return errors.As(err, &ae) && strings.HasSuffix(ae.ErrorCode(), "MessageNotInflight")
}

// isNotFound reports that a queue does not exist.
func isNotFound(err error) bool {
	var e *types.QueueDoesNotExist
	if errors.As(err, &e) {
		return true
	}
	var ae smithy.APIError
	if !errors.As(err, &ae) {
		return false
	}
	code := ae.ErrorCode()
	return strings.HasSuffix(code, "NonExistentQueue") || strings.HasSuffix(code, "QueueDoesNotExist")
}

// extraThrottles are SQS's throttling codes that the SDK's default list lacks.
var extraThrottles = map[string]bool{"KmsThrottled": true, "AWS.SimpleQueueService.RequestThrottled": true}

// IsTransient reports whether an AWS SDK error is worth retrying later: throttling, a server
// fault (5xx, 429), a request that could not be sent or a connection error. A cancelled context
// is not.
func IsTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code := ae.ErrorCode()
		if _, ok := retry.DefaultThrottleErrorCodes[code]; ok || extraThrottles[code] {
			return true
		}
		if _, ok := retry.DefaultRetryableErrorCodes[code]; ok {
			return true
		}
		if ae.ErrorFault() == smithy.FaultServer {
			return true
		}
	}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && (re.HTTPStatusCode() >= 500 || re.HTTPStatusCode() == 429) {
		return true
	}
	var se *smithyhttp.RequestSendError
	if errors.As(err, &se) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	return errors.Is(err, context.DeadlineExceeded)
}
