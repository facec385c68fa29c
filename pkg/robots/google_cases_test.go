package robots

// The longer groups of google/robotstxt robots_test.cc cases; see
// google_test.go.

import "strings"

func longestMatchCases() []googleCase {
	u := "http://foo.bar/x/page.html"
	c := func(rt, url string, want bool) googleCase {
		return googleCase{robots: rt, agent: "FooBot", url: url, want: want}
	}
	return []googleCase{
		c("user-agent: FooBot\n"+
			"disallow: /x/page.html\n"+
			"allow: /x/\n", u, false),
		c("user-agent: FooBot\n"+
			"allow: /x/page.html\n"+
			"disallow: /x/\n", u, true),
		c("user-agent: FooBot\n"+
			"allow: /x/page.html\n"+
			"disallow: /x/\n", "http://foo.bar/x/", false),
		// Equivalent disallow and allow patterns: allow is used.
		c("user-agent: FooBot\n"+
			"disallow: \n"+
			"allow: \n", u, true),
		c("user-agent: FooBot\n"+
			"disallow: /\n"+
			"allow: /\n", u, true),
		c("user-agent: FooBot\n"+
			"disallow: /x\n"+
			"allow: /x/\n", "http://foo.bar/x", false),
		c("user-agent: FooBot\n"+
			"disallow: /x\n"+
			"allow: /x/\n", "http://foo.bar/x/", true),
		c("user-agent: FooBot\n"+
			"disallow: /x/page.html\n"+
			"allow: /x/page.html\n", u, true),
		// Longest match wins.
		c("user-agent: FooBot\n"+
			"allow: /page\n"+
			"disallow: /*.html\n", "http://foo.bar/page.html", false),
		c("user-agent: FooBot\n"+
			"allow: /page\n"+
			"disallow: /*.html\n", "http://foo.bar/page", true),
		c("user-agent: FooBot\n"+
			"allow: /x/page.\n"+
			"disallow: /*.html\n", u, true),
		c("user-agent: FooBot\n"+
			"allow: /x/page.\n"+
			"disallow: /*.html\n", "http://foo.bar/x/y.html", false),
		// The most specific group for FooBot implicitly allows /x/page.
		c("User-agent: *\n"+
			"Disallow: /x/\n"+
			"User-agent: FooBot\n"+
			"Disallow: /y/\n", "http://foo.bar/x/page", true),
		c("User-agent: *\n"+
			"Disallow: /x/\n"+
			"User-agent: FooBot\n"+
			"Disallow: /y/\n", "http://foo.bar/y/page", false),
	}
}

func encodingCases() []googleCase {
	c := func(rt, url string, want bool) googleCase {
		return googleCase{robots: rt, agent: "FooBot", url: url, want: want}
	}
	query := "User-agent: FooBot\n" +
		"Disallow: /\n" +
		"Allow: /foo/bar?qux=taz&baz=http://foo.bar?tar&par\n"
	utf8 := "User-agent: FooBot\n" +
		"Disallow: /\n" +
		"Allow: /foo/bar/ツ\n"
	escaped := "User-agent: FooBot\n" +
		"Disallow: /\n" +
		"Allow: /foo/bar/%E3%83%84\n"
	unreserved := "User-agent: FooBot\n" +
		"Disallow: /\n" +
		"Allow: /foo/bar/%62%61%7A\n"
	return []googleCase{
		// /foo/bar?baz=http://foo.bar stays unencoded.
		c(query, "http://foo.bar/foo/bar?qux=taz&baz=http://foo.bar?tar&par", true),
		// 3 byte character: /foo/bar/ツ -> /foo/bar/%E3%83%84
		c(utf8, "http://foo.bar/foo/bar/%E3%83%84", true),
		// The parser encodes the 3-byte character, but the URL is not %-encoded.
		c(utf8, "http://foo.bar/foo/bar/ツ", false),
		// Percent encoded 3 byte character stays as it is.
		c(escaped, "http://foo.bar/foo/bar/%E3%83%84", true),
		c(escaped, "http://foo.bar/foo/bar/ツ", false),
		// Percent encoded unreserved US-ASCII is not decoded.
		c(unreserved, "http://foo.bar/foo/bar/baz", false),
		c(unreserved, "http://foo.bar/foo/bar/%62%61%7A", true),
	}
}

func specialCharacterCases() []googleCase {
	c := func(rt, url string, want bool) googleCase {
		return googleCase{robots: rt, agent: "FooBot", url: url, want: want}
	}
	star := "User-agent: FooBot\n" +
		"Disallow: /foo/bar/quz\n" +
		"Allow: /foo/*/qux\n"
	dollar := "User-agent: FooBot\n" +
		"Disallow: /foo/bar$\n" +
		"Allow: /foo/bar/qux\n"
	hash := "User-agent: FooBot\n" +
		"# Disallow: /\n" +
		"Disallow: /foo/quz#qux\n" +
		"Allow: /\n"
	return []googleCase{
		c(star, "http://foo.bar/foo/bar/quz", false),
		c(star, "http://foo.bar/foo/quz", true),
		c(star, "http://foo.bar/foo//quz", true),
		c(star, "http://foo.bar/foo/bax/quz", true),
		c(dollar, "http://foo.bar/foo/bar", false),
		c(dollar, "http://foo.bar/foo/bar/qux", true),
		c(dollar, "http://foo.bar/foo/bar/", true),
		c(dollar, "http://foo.bar/foo/bar/baz", true),
		c(hash, "http://foo.bar/foo/bar", true),
		c(hash, "http://foo.bar/foo/quz", false),
	}
}

// lineTooLongCases builds GoogleOnly_LineTooLong's bodies the way the C++
// test does: rule lines that are cut at kMaxLineLen = 2083*8.
func lineTooLongCases() []googleCase {
	const eolLen = len("\n")
	const kMaxLineLen = 2083 * 8
	allow, disallow := "allow: ", "disallow: "
	c := func(rt, url string, want bool) googleCase {
		return googleCase{robots: rt, agent: "FooBot", url: url, want: want}
	}

	// The disallow pattern matches the URL after being cut off.
	rt1 := "user-agent: FooBot\n"
	longline := "/x/"
	maxLength := kMaxLineLen - len(longline) - len(disallow) + eolLen
	longline += strings.Repeat("a", maxLength-len(longline))
	rt1 += disallow + longline + "/qux\n"

	rt2 := "user-agent: FooBot\n" +
		"disallow: /\n"
	longlineA, longlineB := "/x/", "/x/"
	maxLength = kMaxLineLen - len(longlineA) - len(allow) + eolLen
	longlineA += strings.Repeat("a", maxLength-len(longlineA))
	longlineB += strings.Repeat("b", maxLength-len(longlineB))
	rt2 += allow + longlineA + "/qux\n"
	rt2 += allow + longlineB + "/qux\n"

	return []googleCase{
		c(rt1, "http://foo.bar/fux", true),              // matches nothing
		c(rt1, "http://foo.bar"+longline+"/fux", false), // matches the cut disallow
		c(rt2, "http://foo.bar/", false),                // matches the disallow
		c(rt2, "http://foo.bar"+longlineA+"/qux", true), // matches the allow exactly
		c(rt2, "http://foo.bar"+longlineB+"/fux", true), // matches the cut allow
	}
}

// documentationCases are from
// https://developers.google.com/search/reference/robots_txt.
func documentationCases() []googleCase {
	c := func(rt, url string, want bool) googleCase {
		return googleCase{robots: rt, agent: "FooBot", url: url, want: want}
	}
	var cs []googleCase
	// Section "URL matching based on path values".
	for _, rt := range []string{
		"user-agent: FooBot\n" +
			"disallow: /\n" +
			"allow: /fish\n",
		// "/fish*" equals "/fish".
		"user-agent: FooBot\n" +
			"disallow: /\n" +
			"allow: /fish*\n",
	} {
		cs = append(cs,
			c(rt, "http://foo.bar/bar", false),
			c(rt, "http://foo.bar/fish", true),
			c(rt, "http://foo.bar/fish.html", true),
			c(rt, "http://foo.bar/fish/salmon.html", true),
			c(rt, "http://foo.bar/fishheads", true),
			c(rt, "http://foo.bar/fishheads/yummy.html", true),
			c(rt, "http://foo.bar/fish.html?id=anything", true),
		)
		if strings.HasSuffix(rt, "*\n") {
			cs = append(cs, c(rt, "http://foo.bar/Fish.bar", false))
		} else {
			cs = append(cs, c(rt, "http://foo.bar/Fish.asp", false))
		}
		cs = append(cs,
			c(rt, "http://foo.bar/catfish", false),
			c(rt, "http://foo.bar/?id=fish", false),
		)
	}
	// "/fish/" does not equal "/fish".
	fishDir := "user-agent: FooBot\n" +
		"disallow: /\n" +
		"allow: /fish/\n"
	cs = append(cs,
		c(fishDir, "http://foo.bar/bar", false),
		c(fishDir, "http://foo.bar/fish/", true),
		c(fishDir, "http://foo.bar/fish/salmon", true),
		c(fishDir, "http://foo.bar/fish/?salmon", true),
		c(fishDir, "http://foo.bar/fish/salmon.html", true),
		c(fishDir, "http://foo.bar/fish/?id=anything", true),
		c(fishDir, "http://foo.bar/fish", false),
		c(fishDir, "http://foo.bar/fish.html", false),
		c(fishDir, "http://foo.bar/Fish/Salmon.html", false),
	)
	// "/*.php"
	php := "user-agent: FooBot\n" +
		"disallow: /\n" +
		"allow: /*.php\n"
	cs = append(cs,
		c(php, "http://foo.bar/bar", false),
		c(php, "http://foo.bar/filename.php", true),
		c(php, "http://foo.bar/folder/filename.php", true),
		c(php, "http://foo.bar/folder/filename.php?parameters", true),
		c(php, "http://foo.bar//folder/any.php.file.html", true),
		c(php, "http://foo.bar/filename.php/", true),
		c(php, "http://foo.bar/index?f=filename.php/", true),
		c(php, "http://foo.bar/php/", false),
		c(php, "http://foo.bar/index?php", false),
		c(php, "http://foo.bar/windows.PHP", false),
	)
	// "/*.php$"
	phpEnd := "user-agent: FooBot\n" +
		"disallow: /\n" +
		"allow: /*.php$\n"
	cs = append(cs,
		c(phpEnd, "http://foo.bar/bar", false),
		c(phpEnd, "http://foo.bar/filename.php", true),
		c(phpEnd, "http://foo.bar/folder/filename.php", true),
		c(phpEnd, "http://foo.bar/filename.php?parameters", false),
		c(phpEnd, "http://foo.bar/filename.php/", false),
		c(phpEnd, "http://foo.bar/filename.php5", false),
		c(phpEnd, "http://foo.bar/php/", false),
		c(phpEnd, "http://foo.bar/filename?php", false),
		c(phpEnd, "http://foo.bar/aaaphpaaa", false),
		c(phpEnd, "http://foo.bar//windows.PHP", false),
	)
	// "/fish*.php"
	fishPHP := "user-agent: FooBot\n" +
		"disallow: /\n" +
		"allow: /fish*.php\n"
	cs = append(cs,
		c(fishPHP, "http://foo.bar/bar", false),
		c(fishPHP, "http://foo.bar/fish.php", true),
		c(fishPHP, "http://foo.bar/fishheads/catfish.php?parameters", true),
		c(fishPHP, "http://foo.bar/Fish.PHP", false),
	)
	// Section "Order of precedence for group-member records".
	cs = append(cs,
		c("user-agent: FooBot\n"+
			"allow: /p\n"+
			"disallow: /\n", "http://example.com/page", true),
		c("user-agent: FooBot\n"+
			"allow: /folder\n"+
			"disallow: /folder\n", "http://example.com/folder/page", true),
		c("user-agent: FooBot\n"+
			"allow: /page\n"+
			"disallow: /*.htm\n", "http://example.com/page.htm", false),
		c("user-agent: FooBot\n"+
			"allow: /$\n"+
			"disallow: /\n", "http://example.com/", true),
		c("user-agent: FooBot\n"+
			"allow: /$\n"+
			"disallow: /\n", "http://example.com/page.html", false),
	)
	return cs
}
