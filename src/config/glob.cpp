#include "config/glob.h"

#include <fmt/format.h>

namespace kvgpu {

bool Glob::Token::accepts(char c) const
{
    switch (kind) {
    case Kind::Literal:
        return c == literal;
    case Kind::AnyOne:
        return true;
    case Kind::AnyRun:
        return true;
    case Kind::Set: {
        bool inSet = false;
        for (auto [low, high] : ranges)
            inSet = inSet || (c >= low && c <= high);
        return inSet != negated;
    }
    }
    return false;
}

Result<Glob> Glob::compile(std::string_view pattern, Sets sets)
{
    if (pattern.empty())
        return Error{"bad glob \"\": an empty pattern matches nothing; use \"*\" for everything"};
    Glob glob;
    glob.pattern_ = std::string(pattern);
    for (size_t i = 0; i < pattern.size(); ++i) {
        Token token;
        char c = pattern[i];
        if (c == '*') {
            // Runs of stars mean the same as one; keeping one keeps matching linear.
            if (!glob.tokens_.empty() && glob.tokens_.back().kind == Token::Kind::AnyRun)
                continue;
            token.kind = Token::Kind::AnyRun;
        } else if (c == '?') {
            token.kind = Token::Kind::AnyOne;
        } else if (c == '\\') {
            if (i + 1 == pattern.size())
                return Error{fmt::format("bad glob \"{}\": a '\\' at the end escapes nothing", pattern)};
            token.literal = pattern[++i];
        } else if (c == '[' && sets == Sets::Enabled) {
            size_t open = i;
            token.kind = Token::Kind::Set;
            ++i;
            if (i < pattern.size() && pattern[i] == '!') {
                token.negated = true;
                ++i;
            }
            // A ']' right after the opening (or after '!') is a member, as in fnmatch.
            bool first = true;
            while (i < pattern.size() && (pattern[i] != ']' || first)) {
                char low = pattern[i];
                char high = low;
                if (i + 2 < pattern.size() && pattern[i + 1] == '-' && pattern[i + 2] != ']') {
                    high = pattern[i + 2];
                    if (high < low)
                        return Error{fmt::format("bad glob \"{}\": range {}-{} at character {} is backwards", pattern,
                                                 low, high, i + 1)};
                    i += 2;
                }
                token.ranges.emplace_back(low, high);
                first = false;
                ++i;
            }
            if (i >= pattern.size())
                return Error{fmt::format("bad glob \"{}\": the '[' at character {} is never closed", pattern,
                                         open + 1)};
        } else {
            token.literal = c;
        }
        glob.tokens_.push_back(std::move(token));
    }
    return glob;
}

bool Glob::matches(std::string_view text) const
{
    // Greedy matching with one backtrack point (the last star): linear in
    // practice and never exponential, whatever the pattern.
    size_t t = 0, p = 0;
    size_t starToken = std::string::npos, starText = 0;
    while (t < text.size()) {
        if (p < tokens_.size() && tokens_[p].kind == Token::Kind::AnyRun) {
            starToken = p++;
            starText = t;
        } else if (p < tokens_.size() && tokens_[p].accepts(text[t])) {
            ++p;
            ++t;
        } else if (starToken != std::string::npos) {
            p = starToken + 1;
            t = ++starText;
        } else {
            return false;
        }
    }
    while (p < tokens_.size() && tokens_[p].kind == Token::Kind::AnyRun)
        ++p;
    return p == tokens_.size();
}

} // namespace kvgpu
