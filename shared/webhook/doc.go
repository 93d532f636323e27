// Package webhook authenticates and decodes Git push webhooks from GitHub (github.com, GHES,
// GitHub AE), GitLab, Gitea and Forgejo. It parses and verifies only: it knows nothing of the
// pipeline: turning a Push into a git.pushed trigger is the caller's (shared/trigger, called by
// shared/httpapi), and the ingest stage (workers/ingest) makes it a change.detected.
//
// # Use
//
//	body, err := webhook.ReadBody(r, webhook.DefaultMaxBody) // 413 over the limit
//	ev, err := webhook.Parse(r, body, secrets)                // *webhook.Error carries the status
//	key := webhook.DeliveryKey(ev)                            // dedup redeliveries
//
// # Provider detection (first match wins)
//
// Gitea and Forgejo also send GitHub-style headers (X-GitHub-Event, X-Hub-Signature-256), and
// Forgejo also sends Gitea's, so the order matters:
//
//  1. Forgejo: X-Forgejo-Event or X-Forgejo-Signature or X-Forgejo-Delivery.
//  2. Gitea:   X-Gitea-Event or X-Gitea-Delivery.
//  3. GitLab:  X-Gitlab-Event.
//  4. GitHub:  X-GitHub-Event.
//
// Anything else is 400 (unknown provider).
//
// # What is verified
//
//   - GitHub: X-Hub-Signature-256 = "sha256=" + lowercase hex HMAC-SHA256(secret, raw body).
//   - Gitea: X-Gitea-Signature = hex HMAC-SHA256(secret, raw body), no prefix.
//   - Forgejo: X-Forgejo-Signature, same form as Gitea's.
//   - GitLab: X-Gitlab-Token equals the secret (it is the plain shared secret).
//
// The HMAC is computed over the body bytes exactly as received (for a form-encoded GitHub hook:
// the whole "payload=..." body, not the decoded JSON). Every comparison is constant-time
// (crypto/hmac.Equal; the GitLab token is compared as SHA-256 digests so that not even its
// length leaks). The secret is looked up per source with Secrets.Secret(provider, repo), where
// repo is the repository's full name taken from the (not yet verified) body; a source without a
// configured, non-empty secret is refused with 401 — there is no unauthenticated mode. The
// claimed repository is authenticated only in the sense that its sender knows the secret
// configured for it: callers must still check that the Push's Repo is one they deploy from.
//
// Ping and ignored events are verified like pushes: nothing is returned without a valid
// signature.
//
// # Replies
//
// Parse never writes a response; every error it returns is a *Error whose Status the handler
// replies with:
//
//	status  when
//	400     unknown provider, empty or malformed JSON (including a body truncated in transit),
//	        a form body without payload=, a push missing ref/before/after/repository or with a
//	        SHA that is not 40 or 64 hex digits
//	401     signature or token missing or wrong; no secret configured for that source
//	413     body over the limit (ReadBody)
//	415     Content-Type not application/json (or, for GitHub, Gitea and Forgejo,
//	        application/x-www-form-urlencoded with payload=<json>)
//
// On success the handler should reply 2xx for all three results — Push (after it has been
// durably queued; 202), Ping (200) and Ignored (200/202/204) — because providers count any other
// status as a failed delivery and may disable the hook. Validation order: provider, content type,
// JSON syntax, signature, then the event's fields, so an unsigned garbage body gets 400 and a
// well-formed body with a bad signature gets 401.
//
// # Dedup keys
//
// DeliveryKey(ev) is "<provider>:<delivery id>", the id being X-GitHub-Delivery,
// X-Gitea-Delivery, X-Forgejo-Delivery, or for GitLab the Idempotency-Key header (stable across
// retries) falling back to X-Gitlab-Event-UUID. A redelivery carries the same id, so the same
// key. It is "" when the sender gave no id; the push's own identity (the "git.pushed:<sha>" and
// "git:<sha>" keys of its trigger and its change) still makes the deployment idempotent.
//
// # Pushes
//
// Branch and Tag come from refs/heads/... and refs/tags/.... Created and Deleted are the
// provider's flags when it sends them (GitHub) or inferred from an all-zero Before / After
// (GitLab, Gitea and Forgejo send no flags); Forced is only known from GitHub. A deleted ref has
// no commits. Truncated reports that Commits or their file lists may be incomplete — GitLab's
// total_commits_count (Gitea/Forgejo: total_commits) exceeds len(commits) (GitLab sends the
// newest 20), GitHub sent its cap of 2048 commits or a commit listing its cap of 3000 files
// (GitHubMaxFilesPerCommit), or a commit came with no file lists at all
// (GitHub does this for very large commits), or GitHub says the push was forced (its commits
// leave out the ones it discarded from Before, whose files changed too) — and then the caller
// must diff Before..After in the repository instead of trusting ChangedFiles. ChangedFiles folds the file lists of every commit
// of the push, oldest first, into one net change per path.
//
// Commit authors are "Name <email>"; GitLab may send the email as "[REDACTED]" (and anyone may
// send none), and then the author is just "Name". Timestamps are decoded from RFC 3339 strings
// or epoch numbers (seconds or milliseconds); an unreadable timestamp is the zero time, never
// an error.
//
// LambdaRequest turns an API Gateway HTTP API (payload 2.0) or Lambda function URL event into
// an *http.Request and the raw body (base64-decoded when isBase64Encoded), so that Parse and
// its signature check run unchanged behind Lambda.
package webhook
