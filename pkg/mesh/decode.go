package mesh

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ErrBadTask is wrapped by [DecodeTask].
var ErrBadTask = errors.New("bad task")

// ErrBadHeartbeat is wrapped by [DecodeHeartbeat].
var ErrBadHeartbeat = errors.New("bad heartbeat")

// DecodeTask reads a task message body and checks what a worker relies on:
// id, crawl and url present, the crawl id one subject token (it names the
// task, result and dead-letter subjects), the url absolute http(s) and the
// id its [TaskID] (the seen set and publish de-duplication are keyed on
// it), and the depth not negative (max_depth counts from it). Unknown
// fields are ignored so that older workers read newer tasks.
func DecodeTask(data []byte) (Task, error) {
	var t Task
	if err := json.Unmarshal(data, &t); err != nil {
		return Task{}, fmt.Errorf("%w: %v", ErrBadTask, err)
	}
	var missing []string
	for _, f := range []struct{ name, v string }{{"id", t.ID}, {"crawl", t.Crawl}, {"url", t.URL}} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return Task{}, fmt.Errorf("%w: %s missing", ErrBadTask, strings.Join(missing, ", "))
	}
	if !subjectToken(t.Crawl) {
		return Task{}, fmt.Errorf("%w: crawl %q is not one subject token", ErrBadTask, t.Crawl)
	}
	u, err := url.Parse(t.URL)
	if err != nil {
		return Task{}, fmt.Errorf("%w: url %q: %v", ErrBadTask, t.URL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return Task{}, fmt.Errorf("%w: url %q is not an absolute http or https URL", ErrBadTask, t.URL)
	}
	if t.Kind != TaskPage && t.Kind != TaskSitemap {
		return Task{}, fmt.Errorf("%w: unknown kind %q", ErrBadTask, t.Kind)
	}
	if h := TaskID(t.Kind, t.URL); t.ID != h {
		return Task{}, fmt.Errorf("%w: id %q is not the hash of url %q (%s)", ErrBadTask, t.ID, t.URL, h)
	}
	if t.Depth < 0 {
		return Task{}, fmt.Errorf("%w: depth %d is negative", ErrBadTask, t.Depth)
	}
	return t, nil
}

// subjectToken reports whether s can stand as one token of a NATS subject.
func subjectToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r <= ' ' || r == 0x7f || r == '.' || r == '*' || r == '>' {
			return false
		}
	}
	return true
}

// DecodeHeartbeat reads the value of a key in [NodesBucket] and checks what
// the cluster view and the duplicate-id check rely on: a JSON object whose
// key is a valid node id and whose role is master, worker or agent. Other fields
// (state included) are not checked, so that a node of a newer version still
// shows up.
func DecodeHeartbeat(data []byte) (Heartbeat, error) {
	var hb Heartbeat
	if err := json.Unmarshal(data, &hb); err != nil {
		return Heartbeat{}, fmt.Errorf("%w: %v", ErrBadHeartbeat, err)
	}
	if err := ValidateNodeID(hb.Key); err != nil {
		return Heartbeat{}, fmt.Errorf("%w: key: %v", ErrBadHeartbeat, err)
	}
	if hb.Role != RoleMaster && hb.Role != RoleWorker && hb.Role != RoleAgent {
		return Heartbeat{}, fmt.Errorf("%w: role %q: want %s, %s or %s", ErrBadHeartbeat, hb.Role, RoleMaster, RoleWorker, RoleAgent)
	}
	return hb, nil
}
