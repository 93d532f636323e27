package pipeline

import (
	"context"

	"github.com/usekarma/karma/shared/message"
)

// Correlation makes every output a consequence of its input: the input's correlation id,
// causation id = input id, and the input's actor and env — each unless the handler set it (a
// handler continuing another story, such as resolve starting a change set queued behind the one
// that just finished, sets that story's correlation).
func Correlation() Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
			out, err := next(ctx, in)
			for i := range out {
				// message.New makes a root (correlation = its own id): that default is replaced;
				// a correlation the handler set is kept.
				if out[i].CorrelationID == "" || out[i].CorrelationID == out[i].ID {
					out[i].CorrelationID = in.CorrelationID
				}
				if out[i].CausationID == "" {
					out[i].CausationID = in.ID
				}
				if out[i].Actor.Kind == "" {
					out[i].Actor = in.Actor
				}
				if out[i].Env == "" {
					out[i].Env = in.Env
				}
			}
			return out, err
		}
	}
}
