package webhook

import (
	"bytes"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// GitHubMaxCommits is GitHub's cap on a push payload's commits ("The array includes a maximum
// of 2048 commits"): a push with that many may have had more.
const GitHubMaxCommits = 2048

// GitHubMaxFilesPerCommit is GitHub's cap on the files a push payload reports for one commit
// ("A maximum of 3000 changed files will be reported per commit"): a commit listing that many
// (added, modified and removed together) may have changed more.
const GitHubMaxFilesPerCommit = 3000

// redacted is what GitLab sends instead of an email it may not disclose.
const redacted = "[REDACTED]"

// gitUser is a commit author or pusher in GitHub-shaped payloads (GitHub, Gitea, Forgejo).
type gitUser struct {
	Name     string `json:"name"`
	Email    string `json:"email"`
	Username string `json:"username"`
	Login    string `json:"login"` // Gitea/Forgejo pusher
}

type ghCommit struct {
	ID        string    `json:"id"`
	Message   string    `json:"message"`
	Timestamp flexTime  `json:"timestamp"`
	Author    gitUser   `json:"author"`
	Added     *[]string `json:"added"`
	Removed   *[]string `json:"removed"`
	Modified  *[]string `json:"modified"`
}

// ghPush is the push payload of GitHub, Gitea and Forgejo (which copied GitHub's shape).
type ghPush struct {
	Ref          string     `json:"ref"`
	Before       string     `json:"before"`
	After        string     `json:"after"`
	Created      *bool      `json:"created"` // GitHub only
	Deleted      *bool      `json:"deleted"` // GitHub only
	Forced       *bool      `json:"forced"`  // GitHub only
	Commits      []ghCommit `json:"commits"`
	TotalCommits *int       `json:"total_commits"` // Gitea/Forgejo only
	Repository   *struct {
		FullName string `json:"full_name"`
		CloneURL string `json:"clone_url"`
		HTMLURL  string `json:"html_url"`
	} `json:"repository"`
	Pusher gitUser `json:"pusher"`
}

type ghPing struct {
	Zen    string `json:"zen"`
	HookID int64  `json:"hook_id"`
}

func githubEvent(provider, kind, delivery string, payload []byte) (Event, error) {
	switch kind {
	case "ping":
		var p ghPing
		if err := json.Unmarshal(payload, &p); err != nil {
			return nil, errorf(http.StatusBadRequest, "%s ping: %v", provider, err)
		}
		return Ping{Provider: provider, DeliveryID: delivery, Zen: p.Zen, HookID: p.HookID}, nil
	case "push":
	default:
		return Ignored{Provider: provider, DeliveryID: delivery, Kind: kind, Reason: "only push events start deployments"}, nil
	}
	var p ghPush
	if err := json.Unmarshal(payload, &p); err != nil {
		return nil, errorf(http.StatusBadRequest, "%s push: %v", provider, err)
	}
	if p.Repository == nil || p.Repository.FullName == "" {
		return nil, errorf(http.StatusBadRequest, "%s push: no repository.full_name", provider)
	}
	out := Push{Provider: provider, DeliveryID: delivery,
		Repo:   RepoInfo{FullName: p.Repository.FullName, CloneURL: p.Repository.CloneURL, HTMLURL: p.Repository.HTMLURL},
		Pusher: first(p.Pusher.Login, p.Pusher.Username, p.Pusher.Name)}
	if err := setRef(&out, p.Ref, p.Before, p.After); err != nil {
		return nil, err
	}
	if p.Created != nil {
		out.Created = out.Created || *p.Created
	}
	if p.Deleted != nil {
		out.Deleted = out.Deleted || *p.Deleted
	}
	if p.Forced != nil {
		out.Forced = *p.Forced
	}
	for i, c := range p.Commits {
		if !validSHA(c.ID) {
			return nil, errorf(http.StatusBadRequest, "%s push: commits[%d].id %q is not a SHA", provider, i, c.ID)
		}
		out.Commits = append(out.Commits, Commit{ID: c.ID, Message: c.Message, Author: author(c.Author.Name, c.Author.Email, c.Author.Username),
			Timestamp: c.Timestamp.Time(), Added: list(c.Added), Modified: list(c.Modified), Removed: list(c.Removed)})
		if noFiles(c.Added, c.Modified, c.Removed) {
			out.Truncated = true
		}
		if provider == GitHub && count(c.Added)+count(c.Modified)+count(c.Removed) >= GitHubMaxFilesPerCommit {
			out.Truncated = true
		}
	}
	if provider == GitHub && len(p.Commits) >= GitHubMaxCommits {
		out.Truncated = true
	}
	if p.TotalCommits != nil && *p.TotalCommits > len(p.Commits) {
		out.Truncated = true
	}
	finish(&out)
	return out, nil
}

type glCommit struct {
	ID        string   `json:"id"`
	Message   string   `json:"message"`
	Timestamp flexTime `json:"timestamp"`
	Author    struct {
		Name  string `json:"name"`
		Email string `json:"email"`
	} `json:"author"`
	Added    *[]string `json:"added"`
	Modified *[]string `json:"modified"`
	Removed  *[]string `json:"removed"`
}

type glPush struct {
	ObjectKind   string `json:"object_kind"`
	EventName    string `json:"event_name"`
	Ref          string `json:"ref"`
	Before       string `json:"before"`
	After        string `json:"after"`
	UserName     string `json:"user_name"`
	UserUsername string `json:"user_username"`
	Project      struct {
		PathWithNamespace string `json:"path_with_namespace"`
		WebURL            string `json:"web_url"`
		GitHTTPURL        string `json:"git_http_url"`
	} `json:"project"`
	Repository struct {
		GitHTTPURL string `json:"git_http_url"`
		Homepage   string `json:"homepage"`
	} `json:"repository"`
	Commits           []glCommit `json:"commits"`
	TotalCommitsCount *int       `json:"total_commits_count"`
}

func gitlabEvent(kind, delivery string, payload []byte) (Event, error) {
	isPush := kind == "Push Hook" || kind == "Tag Push Hook"
	if kind == "System Hook" {
		// System hooks carry the same push payloads, named in the body.
		var name struct {
			ObjectKind string `json:"object_kind"`
			EventName  string `json:"event_name"`
		}
		_ = json.Unmarshal(payload, &name)
		switch first(name.EventName, name.ObjectKind) {
		case "push", "tag_push":
			isPush = true
		}
	}
	if !isPush {
		return Ignored{Provider: GitLab, DeliveryID: delivery, Kind: kind, Reason: "only push and tag push events start deployments"}, nil
	}
	var p glPush
	if err := json.Unmarshal(payload, &p); err != nil {
		return nil, errorf(http.StatusBadRequest, "gitlab push: %v", err)
	}
	if p.Project.PathWithNamespace == "" {
		return nil, errorf(http.StatusBadRequest, "gitlab push: no project.path_with_namespace")
	}
	out := Push{Provider: GitLab, DeliveryID: delivery,
		Repo: RepoInfo{FullName: p.Project.PathWithNamespace, CloneURL: first(p.Project.GitHTTPURL, p.Repository.GitHTTPURL),
			HTMLURL: first(p.Project.WebURL, p.Repository.Homepage)},
		Pusher: first(p.UserUsername, p.UserName)}
	if err := setRef(&out, p.Ref, p.Before, p.After); err != nil {
		return nil, err
	}
	for i, c := range p.Commits {
		if !validSHA(c.ID) {
			return nil, errorf(http.StatusBadRequest, "gitlab push: commits[%d].id %q is not a SHA", i, c.ID)
		}
		out.Commits = append(out.Commits, Commit{ID: c.ID, Message: c.Message, Author: author(c.Author.Name, c.Author.Email, ""),
			Timestamp: c.Timestamp.Time(), Added: list(c.Added), Modified: list(c.Modified), Removed: list(c.Removed)})
		if noFiles(c.Added, c.Modified, c.Removed) {
			out.Truncated = true
		}
	}
	if p.TotalCommitsCount != nil && *p.TotalCommitsCount > len(p.Commits) {
		out.Truncated = true
	}
	finish(&out)
	return out, nil
}

// setRef fills Ref, Branch, Tag, Before, After and the zero-SHA flags, checking the SHAs (they
// end up in git commands and idempotency keys).
func setRef(p *Push, ref, before, after string) error {
	if ref == "" {
		return errorf(http.StatusBadRequest, "%s push: no ref", p.Provider)
	}
	if !validSHA(before) {
		return errorf(http.StatusBadRequest, "%s push: before %q is not a SHA", p.Provider, before)
	}
	if !validSHA(after) {
		return errorf(http.StatusBadRequest, "%s push: after %q is not a SHA", p.Provider, after)
	}
	if IsZeroSHA(before) && IsZeroSHA(after) {
		return errorf(http.StatusBadRequest, "%s push: before and after are both zero", p.Provider)
	}
	p.Ref, p.Before, p.After = ref, before, after
	p.Branch, p.Tag = SplitRef(ref)
	p.Created = IsZeroSHA(before)
	p.Deleted = IsZeroSHA(after)
	return nil
}

// finish applies the rules that hold whatever the provider: a deleted ref has no commits and
// nothing is missing from them; commits are oldest first, the pushed head (After) last. GitHub
// and GitLab list them that way; Gitea and Forgejo list them newest first
// (go-gitea/gitea#21252), which would make the oldest commit's author and message the head's,
// and fold the files in reverse — a config modified and then deleted would read as modified.
func finish(p *Push) {
	if p.Deleted {
		p.Commits = nil
		p.Truncated = false
	}
	if n := len(p.Commits); n > 1 && strings.EqualFold(p.Commits[0].ID, p.After) && !strings.EqualFold(p.Commits[n-1].ID, p.After) {
		slices.Reverse(p.Commits)
	}
	// A branch moved with no commit listed — moved to a commit pushed before elsewhere, or rewound
	// by a force push — still changed what it holds: its files are known only by diffing
	// Before..After, as for a truncated push. (A rewind to a commit already deployed is answered
	// as a duplicate of that commit's change: one change per commit; see docs/triggers.md.)
	if !p.Deleted && !p.Created && len(p.Commits) == 0 && !strings.EqualFold(p.Before, p.After) {
		p.Truncated = true
	}
	// A force push lists only the commits from where Before and After part to After: the commits
	// it threw away from Before are not listed, yet the files they changed are no longer what the
	// branch holds (a config changed by a discarded commit is back to its older content). Only
	// diffing Before..After says what the branch changed (GitHub says when a push was forced).
	if p.Forced && !p.Deleted && !p.Created {
		p.Truncated = true
	}
}

// SplitRef returns the branch of refs/heads/<branch> or the tag of refs/tags/<tag> (both ""
// for other refs).
func SplitRef(ref string) (branch, tag string) {
	if b, ok := strings.CutPrefix(ref, "refs/heads/"); ok {
		return b, ""
	}
	if t, ok := strings.CutPrefix(ref, "refs/tags/"); ok {
		return "", t
	}
	return "", ""
}

// IsZeroSHA reports whether sha is the all-zeros SHA that stands for "no commit".
func IsZeroSHA(sha string) bool {
	return sha != "" && strings.Trim(sha, "0") == ""
}

// validSHA: 40 (SHA-1) or 64 (SHA-256) hex digits.
func validSHA(s string) bool {
	if len(s) != 40 && len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

func author(name, email, username string) string {
	name = strings.TrimSpace(name)
	email = strings.TrimSpace(email)
	if email == redacted {
		email = ""
	}
	switch {
	case name != "" && email != "":
		return name + " <" + email + ">"
	case name != "":
		return name
	case email != "":
		return "<" + email + ">"
	}
	return username
}

func list(p *[]string) []string {
	if p == nil || len(*p) == 0 {
		return nil
	}
	return append([]string(nil), (*p)...)
}

// count is the length of a file list (0 when missing).
func count(p *[]string) int {
	if p == nil {
		return 0
	}
	return len(*p)
}

// noFiles: a commit whose file lists are all missing or empty, which GitHub sends for very large
// commits; an empty commit looks the same and costs only a needless diff.
func noFiles(a, m, r *[]string) bool {
	return (a == nil || len(*a) == 0) && (m == nil || len(*m) == 0) && (r == nil || len(*r) == 0)
}

// flexTime decodes the timestamps of webhook payloads, which mix RFC 3339 strings and epoch
// numbers, to UTC. It never fails: what it cannot read is the zero time.
type flexTime struct{ t time.Time }

func (f flexTime) Time() time.Time { return f.t }

var timeLayouts = []string{
	time.RFC3339Nano,
	"2006-01-02T15:04:05Z0700",
	"2006-01-02 15:04:05 -0700",
	"2006-01-02 15:04:05 MST",
	"2006-01-02T15:04:05",
	"2006-01-02 15:04:05",
}

func (f *flexTime) UnmarshalJSON(b []byte) error {
	f.t = time.Time{}
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return nil
	}
	switch {
	case b[0] == '"':
		var s string
		if json.Unmarshal(b, &s) != nil {
			return nil
		}
		s = strings.TrimSpace(s)
		if t, ok := epoch(s); ok {
			f.t = t
			return nil
		}
		for _, l := range timeLayouts {
			if t, err := time.Parse(l, s); err == nil {
				f.t = t.UTC()
				return nil
			}
		}
	case b[0] == '-' || ('0' <= b[0] && b[0] <= '9'):
		if t, ok := epoch(string(b)); ok {
			f.t = t
		}
	}
	return nil
}

// epoch reads seconds or, above 1e12, milliseconds since 1970.
func epoch(s string) (time.Time, bool) {
	const maxAbs = 1e15 // keeps the arithmetic far from overflow
	n, err := strconv.ParseFloat(s, 64)
	if err != nil || n > maxAbs || n < -maxAbs || n != n {
		return time.Time{}, false
	}
	if n > 1e12 || n < -1e12 {
		return time.UnixMilli(int64(n)).UTC(), true
	}
	sec := int64(n)
	return time.Unix(sec, int64((n-float64(sec))*1e9)).UTC(), true
}
