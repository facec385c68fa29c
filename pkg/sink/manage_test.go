package sink

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestBuild: the refusals `sink add` and PUT /api/v1/sinks/{name} share,
// each naming the setting, and the defaults of an accepted spec.
func TestBuild(t *testing.T) {
	for _, tc := range []struct {
		sp   Spec
		want string
	}{
		{Spec{Name: "x"}, "give --postgres URL or --webhook URL"},
		{Spec{Name: "x", Postgres: "postgres://db/items", Webhook: "http://127.0.0.1/"}, "not both"},
		{Spec{Name: "x", Postgres: "postgres://db/items", GiveUp: time.Minute}, "--give-up and --request-timeout are webhook settings"},
		{Spec{Name: "x", Webhook: "http://127.0.0.1/", Table: "t"}, "--table is a --postgres setting"},
		{Spec{Name: "x", Postgres: "postgres://app:hunter2@db/items"}, "--postgres: the URL holds a password: give the password as ${env:NAME}"},
		{Spec{Name: "x", Webhook: "http://127.0.0.1/", Timeout: time.Millisecond}, "--request-timeout 1ms"},
		{Spec{Name: "X y", Webhook: "http://127.0.0.1/"}, `name "X y"`},
	} {
		_, err := Build(tc.sp, time.Now())
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%+v: %v; want ErrInvalid with %q", tc.sp, err, tc.want)
		}
	}
	s, err := Build(Spec{Name: "db", Postgres: "postgres://app:${env:PGPASS}@db/items"}, time.Now())
	if err != nil || s.Type != TypePostgres || s.Postgres.Table != DefaultTable || s.BatchSize != DefaultBatchSize {
		t.Errorf("postgres sink: %+v %v", s, err)
	}
	s, err = Build(Spec{Name: "hook", Webhook: "https://example.com/h", Spiders: []string{"books"}}, time.Now())
	if err != nil || s.Type != TypeWebhook || s.BatchSize != 100 || time.Duration(s.Webhook.GiveUp) != DefaultGiveUp || !s.Takes("books") || s.Takes("other") {
		t.Errorf("webhook sink: %+v %v", s, err)
	}
}
