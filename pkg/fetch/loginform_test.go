package fetch_test

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// csrfSite guards its login as Django does: GET /login sets a csrftoken
// cookie and renders a form carrying a hidden token that must come back
// with that cookie; each token is good for one login. A search form comes
// first on the page, as on many sites. The form posts to /session (its
// action; POST /login is refused), which redirects to a callback that
// sets the session cookie and sends on to /home, as single sign-on does.
type csrfSite struct {
	*recorder
	mu      sync.Mutex
	n       int
	tokens  map[string]string // cookie value -> form token, unused yet
	session map[string]bool
	down    bool // the login page answers 503
}

func newCSRFSite(t *testing.T) *csrfSite {
	cs := &csrfSite{recorder: newRecorder(t), tokens: map[string]string{}, session: map[string]bool{}}
	cs.mux.HandleFunc("GET /login", func(w http.ResponseWriter, r *http.Request) {
		cs.mu.Lock()
		if cs.down {
			cs.mu.Unlock()
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		}
		cs.n++
		ck, tok := fmt.Sprintf("c%d", cs.n), fmt.Sprintf("t%d", cs.n)
		cs.tokens[ck] = tok
		cs.mu.Unlock()
		http.SetCookie(w, &http.Cookie{Name: "csrftoken", Value: ck, Path: "/"})
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, `<html><body>
<form action="/search"><input type="hidden" name="ctx" value="search"><input name="q" value="books"></form>
<form action="session" method="post">
  <input type="hidden" name="csrf_token" value="`+tok+`">
  <input name="username"> <input type="password" name="password">
  <input type="checkbox" name="remember" value="1" checked> <input type="checkbox" name="newsletter" value="1">
  <select name="lang"><option value="fr">fr</option><option value="en" selected>en</option></select>
  <input type="submit" name="go" value="Login">
</form></body></html>`)
	})
	cs.mux.HandleFunc("POST /session", func(w http.ResponseWriter, r *http.Request) {
		ck, err := r.Cookie("csrftoken")
		if err != nil || r.ParseForm() != nil {
			http.Error(w, "CSRF cookie not set", http.StatusForbidden)
			return
		}
		cs.mu.Lock()
		defer cs.mu.Unlock()
		if want, ok := cs.tokens[ck.Value]; !ok || r.PostForm.Get("csrf_token") != want {
			http.Error(w, "CSRF token missing or incorrect", http.StatusForbidden)
			return
		}
		delete(cs.tokens, ck.Value)
		if r.PostForm.Get("username") != "demo" || r.PostForm.Get("password") != "pw-456" {
			http.Error(w, "bad credentials", http.StatusForbidden)
			return
		}
		http.Redirect(w, r, "/callback?ticket="+ck.Value, http.StatusFound)
	})
	cs.mux.HandleFunc("GET /callback", func(w http.ResponseWriter, r *http.Request) {
		id := "s-" + r.URL.Query().Get("ticket")
		cs.mu.Lock()
		cs.session[id] = true
		cs.mu.Unlock()
		http.SetCookie(w, &http.Cookie{Name: "sess", Value: id, Path: "/"})
		http.Redirect(w, r, "/home", http.StatusFound)
	})
	cs.mux.HandleFunc("GET /home", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "welcome")
	})
	cs.mux.HandleFunc("/p/", func(w http.ResponseWriter, r *http.Request) {
		ck, err := r.Cookie("sess")
		cs.mu.Lock()
		ok := err == nil && cs.session[ck.Value]
		cs.mu.Unlock()
		if !ok {
			http.Error(w, "log in", http.StatusForbidden)
			return
		}
		w.Header().Set("Content-Type", "text/html")
		_, _ = io.WriteString(w, `<p class="s">`+ck.Value+`</p>`)
	})
	return cs
}

func (cs *csrfSite) expire() {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	clear(cs.session)
}

// A login form guarded by a CSRF token logs in: the token and the form's
// other defaults go with the spec's fields, the search form's do not, to
// the form's action; the redirects after the POST are followed to the
// callback that sets the session. A relogin reads a fresh token. The
// password stays out of errors.
func TestLoginCSRF(t *testing.T) {
	cs := newCSRFSite(t)
	sp := specFor(t, cs.URL, `
politeness: {robots_txt: false}
login:
  url: "`+cs.URL+`/login"
  form: {username: demo, password: "${env:SHOP_PASSWORD}"}
  relogin_on: [403]
items: [{selector: p.s, fields: {session: {css: ""}}}]
`)
	f := loginFetcher()
	if _, err := f.Prepare(t.Context(), sp, "a", cs.URL+"/p/1", nil); err != nil {
		t.Fatalf("login to a CSRF-guarded form: %v", err)
	}
	p, err := f.FetchWith(t.Context(), sp, "a", cs.URL+"/p/1", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s := sessionOf(t, p); s != "s-c1" {
		t.Errorf("page fetched with session %s, want s-c1", s)
	}
	var posts []url.Values
	for _, r := range cs.requests() {
		if r.method == http.MethodPost {
			v, _ := url.ParseQuery(r.body)
			posts = append(posts, v)
		}
	}
	want := url.Values{"csrf_token": {"t1"}, "username": {"demo"}, "password": {"pw-456"}, "remember": {"1"}, "lang": {"en"}}
	if len(posts) != 1 || posts[0].Encode() != want.Encode() {
		t.Fatalf("login posted %v, want %v (hidden token, checked box, selected option; no search form, button or unchecked box)", posts, want)
	}
	var flow []string
	for _, r := range cs.requests() {
		flow = append(flow, r.method+" "+r.path)
	}
	if got, want := strings.Join(flow, ","), "GET /login,POST /session,GET /callback,GET /home,GET /p/1"; got != want {
		t.Errorf("requests %s, want %s", got, want)
	}

	// The session expires: the relogin reads the form again for a new token.
	cs.expire()
	p, err = f.FetchWith(t.Context(), sp, "a", cs.URL+"/p/2", nil, nil)
	if err != nil {
		t.Fatalf("relogin: %v", err)
	}
	if s := sessionOf(t, p); s != "s-c2" {
		t.Errorf("after the relogin the page has session %s, want s-c2", s)
	}

	// A login page that is down is a transient failure of the task, not
	// a refused login that fails the crawl.
	cs.mu.Lock()
	cs.down = true
	cs.mu.Unlock()
	_, err = f.Prepare(t.Context(), sp, "b", cs.URL+"/p/1", nil)
	if fe := fetchErr(t, err); !fe.Transient || fe.CrawlLevel || fe.Status != http.StatusServiceUnavailable {
		t.Errorf("login page answering 503: %+v, want a transient error", fe)
	}
	if strings.Contains(err.Error(), "pw-456") || !strings.Contains(err.Error(), "login page "+cs.URL+"/login") {
		t.Errorf("error %q: want it to name the login page and hold no form value", err)
	}
}

// A login form whose action is on a host outside allowed_domains is not
// posted: the crawl fails, naming the host and not the password (review:
// the password went to the host the site's form named).
func TestLoginActionOutsideAllowedDomains(t *testing.T) {
	thief := newRecorder(t)
	_, port, _ := net.SplitHostPort(thief.Listener.Addr().String())
	s := newRecorder(t)
	s.html("/login", `<form method="post" action="http://localhost:`+port+`/steal">
<input name="user"><input type="password" name="password"></form>`)
	sp := specFor(t, s.URL, `
politeness: {robots_txt: false}
login:
  url: "`+s.URL+`/login"
  form: {user: demo, password: "${env:SHOP_PASSWORD}"}
`)
	_, err := loginFetcher().Prepare(t.Context(), sp, "a", s.URL+"/p/1", nil)
	fe := fetchErr(t, err)
	if fe.Reason != "login" || !fe.CrawlLevel || fe.Transient {
		t.Errorf("err %+v, want a crawl-level login error", fe)
	}
	if msg := err.Error(); !strings.Contains(msg, "localhost:"+port) || strings.Contains(msg, "pw-456") {
		t.Errorf("err %q: want it to name the form's host and hold no password", msg)
	}
	if r := thief.requests(); len(r) != 0 {
		t.Errorf("the host outside allowed_domains got %+v", r)
	}
	for _, r := range s.requests() {
		if r.method != http.MethodGet {
			t.Errorf("%s %s: only the login page may be read", r.method, r.path)
		}
	}
}
