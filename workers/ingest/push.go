package ingest

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
)

// The names a change may carry, as the message schemas (and Parameter Store) allow them.
var (
	shaRe      = regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`)
	typeRe     = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	nicknameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	envRe      = regexp.MustCompile(`^[^/\s]+$`)
)

func validRef(t, n string) bool { return typeRe.MatchString(t) && nicknameRe.MatchString(n) }

// fromPush makes the change of a pushed commit: its deployable files (the receiver kept only
// those), the components whose config.json it removed, and the commit whose tree is deployed.
func fromPush(in message.Envelope) ([]message.Envelope, error) {
	var p message.GitPushed
	if err := message.Decode(in, &p); err != nil {
		return nil, err
	}
	bad := func(format string, a ...any) error {
		return pipeline.Permanent(fmt.Errorf("ingest: git.pushed %s: %s", in.ID, fmt.Sprintf(format, a...)))
	}
	c := p.Commit
	switch {
	case !shaRe.MatchString(c.SHA):
		return nil, bad("commit sha %q: want the full 40 (or 64) hex digits", c.SHA)
	case strings.TrimSpace(c.Author) == "":
		return nil, bad("commit %s has no author", c.SHA)
	case c.Before != "" && !shaRe.MatchString(c.Before):
		return nil, bad("commit %s: before %q: want the full 40 (or 64) hex digits", c.SHA, c.Before)
	case len(p.Files) == 0 && !p.Truncated:
		return nil, bad("commit %s: no file listed and not truncated: nothing to deploy (the receiver queues only deployable pushes)", c.SHA)
	}
	for _, f := range p.Files {
		if f == "" || strings.HasPrefix(f, "/") || strings.Contains("/"+f+"/", "/../") {
			return nil, bad("commit %s: file %q: want a path inside the repository", c.SHA, f)
		}
	}
	for _, r := range p.Removed {
		if !validRef(r.Type, r.Nickname) {
			return nil, bad("commit %s: removed %q is not <type>/<nickname>", c.SHA, r.Type+"/"+r.Nickname)
		}
	}
	if !p.Truncated {
		c.Before = "" // a diff is needed only for a truncated push
	}
	cd := message.ChangeDetected{Source: message.SourceGit, Components: []message.ComponentRef{}, Files: p.Files, Removed: p.Removed,
		Truncated: p.Truncated, Commit: &c, AutoApprove: p.AutoApprove}
	e, err := change(in, message.Actor{Kind: "git", Name: c.Author}, "", "git:"+c.SHA, cd)
	if err != nil {
		return nil, err
	}
	return []message.Envelope{e}, nil
}
