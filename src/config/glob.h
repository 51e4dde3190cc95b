// Shell-style globs for the configuration's `model` and node `name` keys:
// `*` (any run of characters), `?` (one character), `\x` (x literally) and,
// where enabled, `[abc]`, `[a-z]`, `[!a-z]` (one character of, or not of, a
// set). Sets are for node names, which never hold brackets; model names from
// pci.ids almost always do ("GA100 [A100 PCIe 40GB]"), so there `[` and `]`
// are plain characters. Matching is case-sensitive and covers the whole
// text. Unlike fnmatch(3) a malformed pattern is an error at load time, not a
// pattern that silently never matches.
//
// Thread safety: a compiled Glob is immutable; matches() may run on any thread.
#pragma once

#include "base/result.h"

#include <string>
#include <string_view>
#include <vector>

namespace kvgpu {

class Glob {
public:
    enum class Sets { Enabled, Literal };
    // The error says what is wrong and at which character (1-based).
    static Result<Glob> compile(std::string_view pattern, Sets sets = Sets::Enabled);

    bool matches(std::string_view text) const;
    const std::string &pattern() const { return pattern_; }

private:
    struct Token {
        enum class Kind { Literal, AnyOne, AnyRun, Set };
        Kind kind = Kind::Literal;
        char literal = 0;
        bool negated = false;
        std::vector<std::pair<char, char>> ranges; // inclusive, for Kind::Set
        bool accepts(char c) const;
    };

    std::string pattern_;
    std::vector<Token> tokens_;
};

} // namespace kvgpu
