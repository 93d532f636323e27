package pipeline

import (
	"context"
	"log/slog"
	"time"

	"github.com/usekarma/karma/shared/message"
)

// Logging logs every handled message and its outcome with log/slog, with the correlation id.
func Logging(log *slog.Logger, stage string) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, in message.Envelope) ([]message.Envelope, error) {
			start := time.Now()
			out, err := next(ctx, in)
			attrs := []any{"stage", stage, "type", in.Type, "id", in.ID, "correlation_id", in.CorrelationID,
				"env", in.Env, "outputs", len(out), "duration", time.Since(start)}
			if err != nil {
				log.Warn("handler error", append(attrs, "error", err, "action", Classify(err).String())...)
			} else {
				log.Debug("handled", attrs...)
			}
			return out, err
		}
	}
}
