package webhook

import (
	"bytes"
	"net/http"
	"reflect"
	"testing"
	"time"
)

const (
	ghBefore  = "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
	ghAEBfore = "4544205a385319fd846d5df4ed2e3b8173529d78"
	glBefore  = "95790bf891e76fee5e1747ab589903a6a1f80f22"
	glAfter   = "da1560886d4f094c3e6c9ef40349f7d38b5d27d7"
	glTag     = "82b3d5ae55f7080f1e6022629cdb57bfae7cccc7"
)

var (
	ghRepo   = RepoInfo{FullName: "Codertocat/Hello-World", CloneURL: "https://github.com/Codertocat/Hello-World.git", HTMLURL: "https://github.com/Codertocat/Hello-World"}
	ghesRepo = RepoInfo{FullName: "Codertocat/Hello-World", CloneURL: "https://octocoders.github.io/Codertocat/Hello-World.git", HTMLURL: "https://octocoders.github.io/Codertocat/Hello-World"}
	glRepo   = RepoInfo{FullName: "mike/diaspora", CloneURL: "http://example.com/mike/diaspora.git", HTMLURL: "http://example.com/mike/diaspora"}
	glTagRep = RepoInfo{FullName: "jsmith/example", CloneURL: "http://example.com/jsmith/example.git", HTMLURL: "http://example.com/jsmith/example"}
)

func ts(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UTC()
}

// tagDelete is what every octokit tag-delete sample must give.
func tagDelete(before string, repo RepoInfo) Push {
	return Push{Provider: GitHub, DeliveryID: "d1", Ref: "refs/tags/simple-tag", Tag: "simple-tag", Before: before, After: zeroSHA,
		Deleted: true, Repo: repo, Pusher: "Codertocat"}
}

var initialCommit = Commit{ID: ghBefore, Message: "Initial commit", Author: "Codertocat <21031067+Codertocat@users.noreply.github.com>",
	Timestamp: ts("2019-05-15T15:19:25Z"), Added: []string{"README.md"}}

var newBranch = Push{Provider: GitHub, DeliveryID: "d1", Ref: "refs/heads/master", Branch: "master", Before: zeroSHA, After: ghBefore,
	Created: true, Repo: ghRepo, Pusher: "Codertocat", Commits: []Commit{initialCommit}}

var tagCreate = Push{Provider: GitHub, DeliveryID: "d1", Ref: "refs/tags/simple-tag", Tag: "simple-tag", Before: zeroSHA, After: ghBefore,
	Created: true, Repo: ghesRepo, Pusher: "Codertocat"}

var glCommits = func(lastMessage string) []Commit {
	return []Commit{
		{ID: "b6568db1bc1dcd7f8b4d5a946b0b91f9dacd7327", Author: "Jordi Mallach <jordi@softcatala.org>", Timestamp: ts("2011-12-12T14:27:31+02:00"),
			Added: []string{"CHANGELOG"}, Modified: []string{"app/controller/application.rb"}},
		{ID: glAfter, Message: lastMessage, Author: "GitLab dev user <gitlabdev@dv6700.(none)>", Timestamp: ts("2012-01-03T23:36:29+02:00"),
			Added: []string{"CHANGELOG"}, Modified: []string{"app/controller/application.rb"}},
	}
}

var glPushWant = func(firstMessage, lastMessage string) Push {
	c := glCommits(lastMessage)
	c[0].Message = firstMessage
	return Push{Provider: GitLab, DeliveryID: "f5e5f430-f57b-4e6e-9fac-d9128cd7232f", Ref: "refs/heads/master", Branch: "master",
		Before: glBefore, After: glAfter, Repo: glRepo, Pusher: "jsmith", Commits: c,
		Truncated: true} // total_commits_count 4 > 2 commits
}

var glPushFiles = []FileChange{{Path: "CHANGELOG", Added: true}, {Path: "app/controller/application.rb"}}

// TestSamples parses every vendor sample with the headers its vendor sends and checks every
// field of the result.
func TestSamples(t *testing.T) {
	t.Parallel()
	goGitlabTag := Push{Provider: GitLab, DeliveryID: "f5e5f430-f57b-4e6e-9fac-d9128cd7232f", Ref: "refs/tags/v1.0.0", Tag: "v1.0.0",
		Before: zeroSHA, After: glTag, Created: true, Repo: glTagRep, Pusher: "jsmith",
		Commits: []Commit{{ID: glTag, Message: "Merge branch 'some-feature' into 'master'\n\nRelease v1.0.0\n\nSee merge request jsmith/example!1",
			Author: "John Smith <johnsmith@example.com>", Timestamp: ts("2012-01-03T23:36:29+02:00"),
			Added: []string{"CHANGELOG"}, Modified: []string{"UPGRADE.md"}}}}
	tests := []struct {
		dir, name string
		event     string // X-GitHub-Event / X-Gitlab-Event
		want      Push
		files     []FileChange
	}{
		{"github", "octokit__api.github.com__push__1.payload.json", "push", tagDelete(ghBefore, ghRepo), nil},
		{"github", "octokit__api.github.com__push__payload.json", "push", tagDelete(ghBefore, ghRepo), nil},
		{"github", "octokit__api.github.com__push__with-installation.payload.json", "push", tagDelete(ghBefore, ghRepo), nil},
		{"github", "octokit__api.github.com__push__with-organization.payload.json", "push", tagDelete(ghBefore, ghRepo), nil},
		{"github", "octokit__github.ae__push__event.payload.json", "push", tagDelete(ghAEBfore, ghesRepo), nil},
		{"github", "octokit__api.github.com__push__with-new-branch.payload.json", "push", newBranch, []FileChange{{Path: "README.md", Added: true}}},
		// The committer has no username; the author (what Karma records) does not need one.
		{"github", "octokit__api.github.com__push__with-no-username-committer.payload.json", "push", newBranch, []FileChange{{Path: "README.md", Added: true}}},
		// Tag creation: commits empty, head_commit set; nothing to deploy, nothing missing.
		{"github", "octokit__ghes-34__push__payload.json", "push", tagCreate, nil},
		{"github", "octokit__ghes-35__push__payload.json", "push", tagCreate, nil},
		{"gitlab", "gitlab-docs__push_event_example.json", "Push Hook",
			glPushWant("Update Catalan translation to e38cb41.\n\nSee https://gitlab.com/gitlab-org/gitlab for more information", "fixed readme"), glPushFiles},
		{"gitlab", "go-gitlab__push.json", "Push Hook",
			glPushWant("Merge branch 'some-feature' into 'master'\n\nRelease v1.0.0\n\nSee merge request jsmith/example!1", "fixed readme\n"), glPushFiles},
		// The documented tag push has no user_username: the pusher is the display name.
		{"gitlab", "gitlab-docs__tag_push_event_example.json", "Tag Push Hook",
			Push{Provider: GitLab, DeliveryID: "f5e5f430-f57b-4e6e-9fac-d9128cd7232f", Ref: "refs/tags/v1.0.0", Tag: "v1.0.0",
				Before: zeroSHA, After: glTag, Created: true, Repo: glTagRep, Pusher: "John Smith"}, nil},
		{"gitlab", "go-gitlab__tag_push.json", "Tag Push Hook", goGitlabTag,
			[]FileChange{{Path: "CHANGELOG", Added: true}, {Path: "UPGRADE.md"}}},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.dir+"/"+tt.name] = true
	}
	for _, dir := range []string{"github", "gitlab"} {
		for _, n := range sampleNames(t, dir) {
			if !covered[dir+"/"+n] {
				t.Errorf("sample %s/%s has no expectation in TestSamples", dir, n)
			}
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := sample(t, tt.dir, tt.name)
			var r *http.Request
			if tt.dir == "github" {
				r = githubRequest(tt.event, "d1", body, testSecret)
			} else {
				r = gitlabRequest(tt.event, body, testSecret)
			}
			ev, err := Parse(r, body, testSecrets)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := ev.(Push)
			if !ok {
				t.Fatalf("event = %#v, want Push", ev)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("push:\n got %+v\nwant %+v", got, tt.want)
			}
			if files := ChangedFiles(got); !reflect.DeepEqual(files, nonNil(tt.files)) {
				t.Errorf("ChangedFiles = %+v, want %+v", files, tt.files)
			}
			if got.Deleted && len(got.Commits) != 0 {
				t.Error("a deleted ref has commits")
			}
		})
	}
}

func nonNil(f []FileChange) []FileChange {
	if f == nil {
		return []FileChange{}
	}
	return f
}

// TestGitLabRedactedEmails: GitLab may replace emails with [REDACTED]; the vendor samples at the
// recorded commits still show plain addresses, so the redaction is applied to them here.
func TestGitLabRedactedEmails(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, event string
		emails      []string
		wantAuthors []string
		wantTag     string
	}{
		{"gitlab-docs__push_event_example.json", "Push Hook", []string{"jordi@softcatala.org", "gitlabdev@dv6700.(none)", "john@example.com"},
			[]string{"Jordi Mallach", "GitLab dev user"}, ""},
		{"go-gitlab__push.json", "Push Hook", []string{"jordi@softcatala.org", "john@example.com"},
			[]string{"Jordi Mallach", "GitLab dev user <gitlabdev@dv6700.(none)>"}, ""},
		{"go-gitlab__tag_push.json", "Tag Push Hook", []string{"johnsmith@example.com"}, []string{"John Smith"}, "v1.0.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := sample(t, "gitlab", tt.name)
			for _, e := range tt.emails {
				body = bytes.ReplaceAll(body, []byte(`"`+e+`"`), []byte(`"[REDACTED]"`))
			}
			ev, err := Parse(gitlabRequest(tt.event, body, testSecret), body, testSecrets)
			if err != nil {
				t.Fatal(err)
			}
			p := ev.(Push)
			var authors []string
			for _, c := range p.Commits {
				authors = append(authors, c.Author)
			}
			if !reflect.DeepEqual(authors, tt.wantAuthors) || p.Tag != tt.wantTag {
				t.Errorf("authors %q tag %q, want %q %q", authors, p.Tag, tt.wantAuthors, tt.wantTag)
			}
		})
	}
}
