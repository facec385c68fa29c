package spec_test

import (
	"testing"

	"github.com/crawlmesh/crawlmesh/pkg/spec"
)

// TestCredentialsByReferenceAccepted: credentials given as ${env:NAME},
// and names that only look alike (X-Author, consent), pass the checks
// for credentials written out (TestNewSpecChecks has those refused).
func TestCredentialsByReferenceAccepted(t *testing.T) {
	for _, src := range []string{
		"request: {proxies: ['http://u:${env:P}@p:3128']}\n",
		"request: {proxies: ['http://${env:U}:${env:P}@p:3128', 'http://${env:TOKEN}@p:3128', 'http://p:3128']}\n",
		"request: {headers: {Authorization: 'Bearer ${env:T}', X-Author: bob, Accept-Language: en}, cookies: {consent: yes, lang: en}}\n",
		"login: {url: 'https://example.com/login', form: {username: demo, password: '${env:PW}', remember: 'on'}}\n",
	} {
		if _, err := spec.ParseNew([]byte("name: b\nstart_urls: [https://example.com/]\n" + src)); err != nil {
			t.Errorf("%s: %v", src, err)
		}
	}
}
