package robots

import "strings"

// googleAllowed is a line-by-line port of Google's RobotsMatcher (robots.cc
// at c8ac4b1d): the streaming handler with its seen_* flags, the
// specific/global match priorities, the index.html retry in HandleAllow and
// RobotsMatchStrategy::Matches with its pos[] array. It shares only the
// line scanner with the package, and is the oracle FuzzParse compares
// Allowed against.
func googleAllowed(body, agent, path string) bool {
	m := googleMatcher{agent: agent, path: path}
	for i := range m.prio {
		m.prio[i] = -1
	}
	scan(body, func(l line) {
		switch l.key {
		case keyUserAgent:
			m.handleUserAgent(l.value)
		case keyAllow:
			m.handleAllow(l.value)
		case keyDisallow:
			m.handleDisallow(l.value)
		}
	})
	return !m.disallow()
}

const (
	allowSpecific = iota
	allowGlobal
	disallowSpecific
	disallowGlobal
)

type googleMatcher struct {
	agent, path                                 string
	seenGlobal, seenSpecific, everSpecific, sep bool
	prio                                        [4]int
}

func (m *googleMatcher) disallow() bool {
	if m.prio[allowSpecific] > 0 || m.prio[disallowSpecific] > 0 {
		return m.prio[disallowSpecific] > m.prio[allowSpecific]
	}
	if m.everSpecific {
		return false
	}
	if m.prio[disallowGlobal] > 0 || m.prio[allowGlobal] > 0 {
		return m.prio[disallowGlobal] > m.prio[allowGlobal]
	}
	return false
}

func (m *googleMatcher) handleUserAgent(ua string) {
	if m.sep {
		m.seenSpecific, m.seenGlobal, m.sep = false, false, false
	}
	if len(ua) >= 1 && ua[0] == '*' && (len(ua) == 1 || strings.IndexByte(" \t\n\v\f\r", ua[1]) >= 0) {
		m.seenGlobal = true
		return
	}
	i := 0
	for i < len(ua) && (ua[i] >= 'a' && ua[i] <= 'z' || ua[i] >= 'A' && ua[i] <= 'Z' || ua[i] == '-' || ua[i] == '_') {
		i++
	}
	if strings.EqualFold(ua[:i], m.agent) { // both ASCII in the fuzz target
		m.everSpecific, m.seenSpecific = true, true
	}
}

func (m *googleMatcher) set(specific, global, p int) {
	if m.seenSpecific {
		if m.prio[specific] < p {
			m.prio[specific] = p
		}
	} else if m.prio[global] < p {
		m.prio[global] = p
	}
}

func (m *googleMatcher) handleAllow(v string) {
	if !m.seenGlobal && !m.seenSpecific {
		return
	}
	m.sep = true
	if googleMatches(m.path, v) {
		m.set(allowSpecific, allowGlobal, len(v))
		return
	}
	if slash := strings.LastIndexByte(v, '/'); slash >= 0 && strings.HasPrefix(v[slash:], "/index.htm") {
		m.handleAllow(v[:slash+1] + "$")
	}
}

func (m *googleMatcher) handleDisallow(v string) {
	if !m.seenGlobal && !m.seenSpecific {
		return
	}
	m.sep = true
	if googleMatches(m.path, v) {
		m.set(disallowSpecific, disallowGlobal, len(v))
	}
}

// googleMatches is RobotsMatchStrategy::Matches.
func googleMatches(path, pattern string) bool {
	pathlen := len(path)
	pos := make([]int, pathlen+1)
	numpos := 1
	for k := 0; k < len(pattern); k++ {
		c := pattern[k]
		if c == '$' && k+1 == len(pattern) {
			return pos[numpos-1] == pathlen
		}
		if c == '*' {
			numpos = pathlen - pos[0] + 1
			for i := 1; i < numpos; i++ {
				pos[i] = pos[i-1] + 1
			}
			continue
		}
		n := 0
		for i := 0; i < numpos; i++ {
			if pos[i] < pathlen && path[pos[i]] == c {
				pos[n] = pos[i] + 1
				n++
			}
		}
		numpos = n
		if numpos == 0 {
			return false
		}
	}
	return true
}
