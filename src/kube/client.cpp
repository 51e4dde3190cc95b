#include "kube/client.h"

#include "base/regular_file.h"
#include "base/strings.h"

#include <exception>
#include <mutex>
#include <optional>
#include <set>
#include <vector>

#include <curl/curl.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>

namespace kvgpu::kube {

namespace {

constexpr std::size_t kMaxTokenBytes = 64 << 10;
constexpr std::size_t kMaxFileCheckBytes = 1 << 20;
constexpr std::size_t kMaxStatusPrefix = 200;
// How often a transfer looks at its stop flag while nothing arrives: half the
// 200 ms the header promises. cancelAll() also wakes the poll at once.
constexpr int kPollMilliseconds = 100;
// Idle handle pairs kept for reuse (and with them their open connections).
constexpr std::size_t kMaxIdleHandles = 8;

std::once_flag curlInitOnce;
CURLcode curlInitResult = CURLE_OK;

// One multi handle driving one easy handle: the multi interface lets a
// transfer wait in curl_multi_poll, which cancelAll() can wake, instead of in
// curl_easy_perform, which only looks at its progress callback about once a
// second when the peer is silent. The multi handle's connection cache keeps
// the connection open between the calls that reuse the pair.
struct Handles {
    CURLM *multi = nullptr;
    CURL *easy = nullptr;

    Handles() : multi(curl_multi_init()), easy(curl_easy_init()) {}
    ~Handles()
    {
        if (easy)
            curl_easy_cleanup(easy);
        if (multi)
            curl_multi_cleanup(multi);
    }
    Handles(const Handles &) = delete;
    Handles &operator=(const Handles &) = delete;
};

struct HeaderList {
    curl_slist *list = nullptr;
    ~HeaderList() { curl_slist_free_all(list); }
    void add(const std::string &header) { list = curl_slist_append(list, header.c_str()); }
};

// What one transfer receives, handed to curl's write callback.
struct Transfer {
    CURL *easy = nullptr;
    std::size_t maxBytes = 0;
    bool tooLarge = false;
    std::string body;
    // Set for a watch: complete lines go there, the rest waits in `pending`.
    const std::function<void(std::string_view)> *onEvent = nullptr;
    std::string pending;
    std::exception_ptr exception;
};

bool successStatus(CURL *easy)
{
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    return status >= 200 && status < 300;
}

void deliverLines(Transfer &transfer)
{
    std::size_t start = 0;
    for (std::size_t newline; (newline = transfer.pending.find('\n', start)) != std::string::npos;
         start = newline + 1) {
        std::string_view line(transfer.pending.data() + start, newline - start);
        if (!line.empty() && line.back() == '\r')
            line.remove_suffix(1);
        if (!line.empty())
            (*transfer.onEvent)(line);
    }
    transfer.pending.erase(0, start);
}

// curl's write callback. Returning less than it was given aborts the transfer
// (CURLE_WRITE_ERROR); an exception must not cross into C, so it is kept and
// rethrown once curl has returned.
size_t onData(char *data, size_t size, size_t count, void *userdata)
{
    auto &transfer = *static_cast<Transfer *>(userdata);
    const std::size_t length = size * count;
    // A refused watch carries a Status body, not events.
    const bool streaming = transfer.onEvent && successStatus(transfer.easy);
    std::string &sink = streaming ? transfer.pending : transfer.body;
    if (sink.size() + length > transfer.maxBytes) {
        transfer.tooLarge = true;
        return 0;
    }
    sink.append(data, length);
    if (streaming) {
        try {
            deliverLines(transfer);
        } catch (...) {
            transfer.exception = std::current_exception();
            return 0;
        }
    }
    return length;
}

// The identity of a token file's current content: a rotation replaces the
// file (the kubelet swaps a symlink) or rewrites it, and either changes one of these.
struct FileStamp {
    dev_t device = 0;
    ino_t inode = 0;
    off_t size = 0;
    timespec modified{};

    bool operator==(const FileStamp &other) const
    {
        return device == other.device && inode == other.inode && size == other.size &&
               modified.tv_sec == other.modified.tv_sec && modified.tv_nsec == other.modified.tv_nsec;
    }
};

} // namespace

struct Client::Impl {
    ClusterAccess access;
    ClientOptions options;
    std::atomic<bool> cancelled{false};

    std::mutex mutex;
    std::vector<std::unique_ptr<Handles>> idle;  // guarded by mutex
    std::set<CURLM *> active;                    // guarded by mutex
    std::string fileToken;                       // guarded by mutex
    std::optional<FileStamp> fileTokenStamp;     // guarded by mutex

    ~Impl() = default;

    // The token to send now: the token file's content, re-read whenever the
    // file changed, else the fixed token.
    Result<std::string> bearerToken()
    {
        if (access.tokenFile.empty())
            return access.token;
        std::lock_guard lock(mutex);
        struct stat info {};
        if (::stat(access.tokenFile.c_str(), &info) != 0)
            return fileError("read token file", access.tokenFile, errno);
        const FileStamp stamp{info.st_dev, info.st_ino, info.st_size, info.st_mtim};
        if (fileTokenStamp && *fileTokenStamp == stamp)
            return fileToken;
        Result<std::string> text = readRegularFile(access.tokenFile, kMaxTokenBytes, LastLink::Follow);
        if (!text)
            return Error{"token file: " + text.error()};
        fileToken = std::string(trim(*text));
        fileTokenStamp = stamp;
        return fileToken;
    }

    std::unique_ptr<Handles> acquire()
    {
        {
            std::lock_guard lock(mutex);
            if (!idle.empty()) {
                std::unique_ptr<Handles> handles = std::move(idle.back());
                idle.pop_back();
                return handles;
            }
        }
        auto handles = std::make_unique<Handles>();
        if (!handles->multi || !handles->easy)
            return nullptr;
        return handles;
    }

    void release(std::unique_ptr<Handles> handles)
    {
        curl_easy_reset(handles->easy);
        std::lock_guard lock(mutex);
        if (idle.size() < kMaxIdleHandles)
            idle.push_back(std::move(handles));
    }

    // Sets every option of one transfer; curl_easy_reset cleared the last one's.
    Result<void> configure(CURL *easy, std::string_view method, const std::string &url, const std::string &body,
                           std::string_view contentType, bool isWatch, HeaderList &headers, char *errorBuffer,
                           Transfer &transfer)
    {
        Result<std::string> token = bearerToken();
        if (!token)
            return token.failure();
        if (!token->empty())
            headers.add("Authorization: Bearer " + *token);
        headers.add("Accept: application/json");
        if (!body.empty())
            headers.add(fmt::format("Content-Type: {}", contentType));
        // curl would wait a second for "100 Continue" before a large body.
        headers.add("Expect:");

        bool ok = true;
        auto set = [&](CURLoption option, auto value) { ok = ok && curl_easy_setopt(easy, option, value) == CURLE_OK; };
        set(CURLOPT_URL, url.c_str());
        set(CURLOPT_NOSIGNAL, 1L);
        set(CURLOPT_ERRORBUFFER, errorBuffer);
        set(CURLOPT_USERAGENT, options.userAgent.c_str());
        set(CURLOPT_HTTPHEADER, headers.list);
        set(CURLOPT_WRITEFUNCTION, &onData);
        set(CURLOPT_WRITEDATA, static_cast<void *>(&transfer));
        set(CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options.connectTimeout.count()));
        set(CURLOPT_TCP_KEEPALIVE, 1L);
        set(CURLOPT_TCP_KEEPIDLE, 30L);
        set(CURLOPT_TCP_KEEPINTVL, 10L);
        if (isWatch) {
            if (options.watchIdleTimeout.count() > 0) {
                set(CURLOPT_LOW_SPEED_LIMIT, 1L);
                set(CURLOPT_LOW_SPEED_TIME, static_cast<long>(options.watchIdleTimeout.count()));
            }
        } else {
            set(CURLOPT_TIMEOUT_MS, static_cast<long>(options.requestTimeout.count()));
        }

        if (method == "GET") {
            set(CURLOPT_HTTPGET, 1L);
        } else if (method == "HEAD") {
            set(CURLOPT_NOBODY, 1L);
        } else {
            set(CURLOPT_CUSTOMREQUEST, std::string(method).c_str());
            if (!body.empty() || method == "POST" || method == "PUT" || method == "PATCH") {
                set(CURLOPT_POSTFIELDS, body.c_str());
                set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
            }
        }
        if (!ok)
            return Error{"cannot set up a curl transfer"};

        if (access.insecure) {
            set(CURLOPT_SSL_VERIFYPEER, 0L);
            set(CURLOPT_SSL_VERIFYHOST, 0L);
        } else if (!access.caPem.empty()) {
            curl_blob blob{const_cast<char *>(access.caPem.data()), access.caPem.size(), CURL_BLOB_COPY};
            set(CURLOPT_CAINFO_BLOB, &blob);
        } else if (!access.caFile.empty()) {
            set(CURLOPT_CAINFO, access.caFile.c_str());
        }
        if (!access.clientCertPem.empty()) {
            curl_blob blob{const_cast<char *>(access.clientCertPem.data()), access.clientCertPem.size(),
                           CURL_BLOB_COPY};
            set(CURLOPT_SSLCERT_BLOB, &blob);
        } else if (!access.clientCertFile.empty()) {
            set(CURLOPT_SSLCERT, access.clientCertFile.c_str());
        }
        if (!access.clientKeyPem.empty()) {
            curl_blob blob{const_cast<char *>(access.clientKeyPem.data()), access.clientKeyPem.size(),
                           CURL_BLOB_COPY};
            set(CURLOPT_SSLKEY_BLOB, &blob);
        } else if (!access.clientKeyFile.empty()) {
            set(CURLOPT_SSLKEY, access.clientKeyFile.c_str());
        }
        if (!ok)
            return Error{fmt::format("this libcurl ({}) cannot use the configured TLS settings",
                                     curl_version_info(CURLVERSION_NOW)->version)};
        return {};
    }

    // Runs the transfer until it ends, `stop` becomes true or cancelAll() is
    // called. nullopt when it was stopped by `stop`.
    std::optional<CURLcode> perform(Handles &handles, const std::atomic<bool> *stop)
    {
        {
            std::lock_guard lock(mutex);
            active.insert(handles.multi);
        }
        std::optional<CURLcode> result;
        if (curl_multi_add_handle(handles.multi, handles.easy) != CURLM_OK) {
            result = CURLE_FAILED_INIT;
        } else {
            for (;;) {
                if (cancelled.load()) {
                    result = CURLE_ABORTED_BY_CALLBACK;
                    break;
                }
                if (stop && stop->load())
                    break;
                int running = 0;
                if (curl_multi_perform(handles.multi, &running) != CURLM_OK) {
                    result = CURLE_FAILED_INIT;
                    break;
                }
                if (running == 0) {
                    int queued = 0;
                    CURLMsg *message = curl_multi_info_read(handles.multi, &queued);
                    result = message && message->msg == CURLMSG_DONE ? message->data.result : CURLE_FAILED_INIT;
                    break;
                }
                if (curl_multi_poll(handles.multi, nullptr, 0, kPollMilliseconds, nullptr) != CURLM_OK) {
                    result = CURLE_FAILED_INIT;
                    break;
                }
            }
            curl_multi_remove_handle(handles.multi, handles.easy);
        }
        std::lock_guard lock(mutex);
        active.erase(handles.multi);
        return result;
    }

    std::string failure(std::string_view method, const std::string &url, CURLcode code, const char *errorBuffer,
                        const Transfer &transfer) const
    {
        std::string why;
        if (code == CURLE_ABORTED_BY_CALLBACK)
            why = "cancelled";
        else if (transfer.tooLarge)
            why = fmt::format("the answer exceeds {} bytes", transfer.maxBytes);
        else if (errorBuffer[0] != '\0')
            why = std::string(trim(errorBuffer));
        else
            why = curl_easy_strerror(code);
        return fmt::format("{} {}: {}", method, url, why);
    }

    // One transfer from start to end; `onEvent` set makes it a watch.
    Result<Response> run(std::string_view method, const std::string &path, const std::string &body,
                         std::string_view contentType, const std::function<void(std::string_view)> *onEvent,
                         const std::atomic<bool> *stop, bool &stopped)
    {
        const std::string url = access.server + path;
        if (cancelled.load())
            return Error{fmt::format("{} {}: cancelled", method, url)};
        if (path.empty() || path.front() != '/')
            return Error{fmt::format("{} {}: the path does not start with /", method, path)};
        std::unique_ptr<Handles> handles = acquire();
        if (!handles)
            return Error{fmt::format("{} {}: cannot create a curl handle", method, url)};

        Transfer transfer;
        transfer.easy = handles->easy;
        transfer.maxBytes = options.maxResponseBytes;
        transfer.onEvent = onEvent;
        HeaderList headers;
        char errorBuffer[CURL_ERROR_SIZE] = {};
        Result<void> configured =
            configure(handles->easy, method, url, body, contentType, onEvent != nullptr, headers, errorBuffer, transfer);
        if (!configured) {
            release(std::move(handles));
            return Error{fmt::format("{} {}: {}", method, url, configured.error())};
        }

        std::optional<CURLcode> code = perform(*handles, stop);
        Response response;
        curl_easy_getinfo(handles->easy, CURLINFO_RESPONSE_CODE, &response.status);
        response.body = std::move(transfer.body);
        std::string why;
        if (code && *code != CURLE_OK && !transfer.exception)
            why = failure(method, url, *code, errorBuffer, transfer);
        release(std::move(handles));
        if (transfer.exception)
            std::rethrow_exception(transfer.exception);
        stopped = !code.has_value();
        if (!why.empty())
            return Error{why};
        return response;
    }
};

std::string statusMessage(const Response &response)
{
    const nlohmann::json parsed = nlohmann::json::parse(response.body, nullptr, false);
    if (!parsed.is_discarded() && parsed.is_object()) {
        auto message = parsed.find("message");
        if (message != parsed.end() && message->is_string() && !message->get<std::string>().empty())
            return message->get<std::string>();
    }
    std::string_view text = trim(response.body);
    text = text.substr(0, text.find('\n'));
    text = trim(text.substr(0, kMaxStatusPrefix));
    if (!text.empty())
        return std::string(text);
    return fmt::format("HTTP {}", response.status);
}

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Client::~Client()
{
    std::lock_guard lock(impl_->mutex);
    impl_->idle.clear();
}

Result<std::unique_ptr<Client>> Client::create(ClusterAccess access, ClientOptions options)
{
    std::call_once(curlInitOnce, [] { curlInitResult = curl_global_init(CURL_GLOBAL_DEFAULT); });
    if (curlInitResult != CURLE_OK)
        return Error{fmt::format("cannot initialise libcurl: {}", curl_easy_strerror(curlInitResult))};

    while (!access.server.empty() && access.server.back() == '/')
        access.server.pop_back();
    if (access.server.rfind("https://", 0) != 0 && access.server.rfind("http://", 0) != 0)
        return Error{fmt::format("API server \"{}\" is not an https:// URL", access.server)};
    if (access.server.find('/', access.server.find("//") + 2) != std::string::npos)
        return Error{fmt::format("API server \"{}\" has a path; only https://host:port is supported", access.server)};
    // Unreadable files are found now, with the file's name, rather than as a
    // TLS failure on the first request.
    for (const std::string *file : {&access.caFile, &access.clientCertFile, &access.clientKeyFile}) {
        if (file->empty())
            continue;
        Result<std::string> readable = readRegularFile(*file, kMaxFileCheckBytes, LastLink::Follow);
        if (!readable)
            return readable.failure();
    }

    auto impl = std::make_unique<Impl>();
    impl->access = std::move(access);
    impl->options = std::move(options);
    Result<std::string> token = impl->bearerToken();
    if (!token)
        return token.failure();
    return std::unique_ptr<Client>(new Client(std::move(impl)));
}

Result<Response> Client::request(std::string_view method, const std::string &path, const std::string &body,
                                 std::string_view contentType)
{
    bool stopped = false;
    return impl_->run(method, path, body, contentType, nullptr, nullptr, stopped);
}

Result<void> Client::watch(const std::string &path, const std::function<void(std::string_view line)> &onEvent,
                           const std::atomic<bool> &stop)
{
    bool stopped = false;
    Result<Response> response = impl_->run("GET", path, {}, {}, &onEvent, &stop, stopped);
    if (!response)
        return response.failure();
    if (stopped)
        return {};
    if (!response->succeeded())
        return Error{fmt::format("GET {}{}: HTTP {}: {}", impl_->access.server, path, response->status,
                                 statusMessage(*response))};
    return {};
}

void Client::cancelAll()
{
    impl_->cancelled.store(true);
    std::lock_guard lock(impl_->mutex);
    for (CURLM *multi : impl_->active)
        curl_multi_wakeup(multi);
}

const std::string &Client::server() const
{
    return impl_->access.server;
}

} // namespace kvgpu::kube
