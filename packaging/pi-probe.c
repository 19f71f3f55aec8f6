/*
 * pi-probe: what one llama.cpp build makes of a model, for comparing two builds.
 *
 * pi-check.sh compiles this file twice against the same llama.cpp source, natively (x86) and
 * for the Raspberry Pi 5 (aarch64, run under qemu), and compares what the two print: the
 * build's SIMD features, the logits after a fixed prompt, and a greedy completion. Greedy
 * decoding is an argmax over the logits, so the tokens depend on nothing but the kernels; each
 * token's margin over the runner-up is printed too, to tell a near tie from a real difference.
 *
 * usage: pi-probe MODEL PROMPT N_PREDICT THREADS N_CTX N_BATCH KV_TYPE LOGITS_OUT [FORCED]
 *   KV_TYPE is f16, q8_0 or f32; flash attention is on, as llamadesk loads models, unless the
 *   environment has PI_PROBE_FLASH_ATTN=off (to tell the attention kernel's share of a difference);
 *   LOGITS_OUT receives the prompt's last-token logits as little-endian float32;
 *   FORCED, comma-separated token ids (another build's greedy output), are decoded instead of
 *   this build's own picks, so every step compares the two builds on the same context; the
 *   picks are still reported ("picks"; "tokens" holds what was decoded).
 * Prints one JSON object on stdout; exit 1 with a message on stderr when anything fails.
 */
#define _POSIX_C_SOURCE 199309L /* clock_gettime */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ggml.h"
#include "llama.h"

static void quiet_log(enum ggml_log_level level, const char *text, void *user_data) {
    (void)user_data;
    if (level == GGML_LOG_LEVEL_ERROR) {
        fputs(text, stderr);
    }
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int fail(const char *what) {
    fprintf(stderr, "pi-probe: %s\n", what);
    return 1;
}

/* Writes `text` as a JSON string (the generated text may hold quotes, newlines or control bytes). */
static void print_json_string(const char *text, size_t length) {
    putchar('"');
    for (size_t i = 0; i < length; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '"' || c == '\\') {
            printf("\\%c", c);
        } else if (c < 0x20) {
            printf("\\u%04x", c);
        } else {
            putchar(c);
        }
    }
    putchar('"');
}

static int kv_type_named(const char *name, enum ggml_type *type) {
    if (strcmp(name, "f16") == 0) {
        *type = GGML_TYPE_F16;
    } else if (strcmp(name, "q8_0") == 0) {
        *type = GGML_TYPE_Q8_0;
    } else if (strcmp(name, "f32") == 0) {
        *type = GGML_TYPE_F32;
    } else {
        return 0;
    }
    return 1;
}

/* The best token, and by how much it beats the runner-up: a small margin is a near tie, which
   another build's rounding may break the other way. */
static int argmax(const float *values, int n, float *margin) {
    int best = 0, second = -1;
    for (int i = 1; i < n; i++) {
        if (values[i] > values[best]) {
            second = best;
            best = i;
        } else if (second < 0 || values[i] > values[second]) {
            second = i;
        }
    }
    *margin = second < 0 ? 0.0f : values[best] - values[second];
    return best;
}

int main(int argc, char **argv) {
    if (argc != 9 && argc != 10) {
        fprintf(stderr, "usage: %s MODEL PROMPT N_PREDICT THREADS N_CTX N_BATCH KV_TYPE LOGITS_OUT [FORCED]\n", argv[0]);
        return 2;
    }
    const char *model_path = argv[1], *prompt = argv[2], *logits_path = argv[8];
    int n_predict = atoi(argv[3]), n_threads = atoi(argv[4]), n_ctx = atoi(argv[5]), n_batch = atoi(argv[6]);
    enum ggml_type kv_type;
    if (n_predict < 0 || n_threads < 1 || n_ctx < 16 || n_batch < 1 || !kv_type_named(argv[7], &kv_type)) {
        return fail("bad arguments (N_PREDICT >= 0, THREADS >= 1, N_CTX >= 16, N_BATCH >= 1, KV_TYPE f16|q8_0|f32)");
    }

    llama_log_set(quiet_log, NULL);
    llama_backend_init();
    double started = now_seconds();
    struct llama_model_params model_params = llama_model_default_params();
    model_params.n_gpu_layers = 0;
    struct llama_model *model = llama_model_load_from_file(model_path, model_params);
    if (model == NULL) {
        return fail("cannot load the model");
    }
    struct llama_context_params context_params = llama_context_default_params();
    context_params.n_ctx = (uint32_t)n_ctx;
    context_params.n_batch = (uint32_t)n_batch;
    context_params.n_ubatch = (uint32_t)n_batch;
    context_params.n_threads = n_threads;
    context_params.n_threads_batch = n_threads;
    context_params.type_k = kv_type;
    context_params.type_v = kv_type;
    const char *flash_attn = getenv("PI_PROBE_FLASH_ATTN");
    context_params.flash_attn_type = flash_attn != NULL && strcmp(flash_attn, "off") == 0
                                         ? LLAMA_FLASH_ATTN_TYPE_DISABLED
                                         : LLAMA_FLASH_ATTN_TYPE_ENABLED;
    struct llama_context *context = llama_init_from_model(model, context_params);
    if (context == NULL) {
        return fail("cannot create a context with these settings");
    }
    double loaded = now_seconds();

    const struct llama_vocab *vocab = llama_model_get_vocab(model);
    int n_vocab = llama_vocab_n_tokens(vocab);
    int capacity = (int)strlen(prompt) + 8;
    llama_token *tokens = malloc(sizeof(llama_token) * (size_t)(capacity + n_predict));
    int n_prompt = llama_tokenize(vocab, prompt, (int)strlen(prompt), tokens, capacity, true, true);
    if (n_prompt <= 0 || n_prompt + n_predict > n_ctx) {
        return fail("the prompt does not tokenize, or it and N_PREDICT do not fit in N_CTX");
    }
    if (llama_decode(context, llama_batch_get_one(tokens, n_prompt)) != 0) {
        return fail("decoding the prompt failed");
    }
    double prompted = now_seconds();
    const float *logits = llama_get_logits_ith(context, -1);
    FILE *out = fopen(logits_path, "wb");
    if (out == NULL || fwrite(logits, sizeof(float), (size_t)n_vocab, out) != (size_t)n_vocab || fclose(out) != 0) {
        return fail("cannot write the logits file");
    }

    /* The forced tokens, if any: at most N_PREDICT of them. */
    llama_token *forced = malloc(sizeof(llama_token) * (size_t)(n_predict + 1));
    int n_forced = -1;
    if (argc == 10) {
        n_forced = 0;
        for (char *item = strtok(argv[9], ","); item != NULL && n_forced < n_predict; item = strtok(NULL, ",")) {
            forced[n_forced] = atoi(item);
            if (forced[n_forced] < 0 || forced[n_forced] >= n_vocab) {
                return fail("a forced token id is outside the vocabulary");
            }
            n_forced++;
        }
        n_predict = n_forced;
    }

    /* Greedy completion: one token at a time, each the argmax of the last logits. */
    char *text = malloc(64 * (size_t)n_predict + 1);
    float *margins = malloc(sizeof(float) * (size_t)(n_predict + 1));
    llama_token *picks = malloc(sizeof(llama_token) * (size_t)(n_predict + 1));
    size_t text_length = 0;
    int n_generated = 0;
    for (; n_generated < n_predict; n_generated++) {
        llama_token pick = argmax(llama_get_logits_ith(context, -1), n_vocab, &margins[n_generated]);
        picks[n_generated] = pick;
        llama_token next = n_forced >= 0 ? forced[n_generated] : pick;
        if (n_forced < 0 && llama_vocab_is_eog(vocab, next)) {
            break;
        }
        tokens[n_prompt + n_generated] = next;
        int piece = llama_token_to_piece(vocab, next, text + text_length, 64, 0, false);
        text_length += piece > 0 ? (size_t)piece : 0;
        if (llama_decode(context, llama_batch_get_one(&tokens[n_prompt + n_generated], 1)) != 0) {
            return fail("decoding a generated token failed");
        }
    }
    double generated = now_seconds();

    printf("{\"system_info\": ");
    const char *info = llama_print_system_info();
    print_json_string(info, strlen(info));
    printf(", \"n_vocab\": %d, \"prompt_tokens\": %d, \"tokens\": [", n_vocab, n_prompt);
    for (int i = 0; i < n_generated; i++) {
        printf(i ? ", %d" : "%d", tokens[n_prompt + i]);
    }
    printf("], \"picks\": [");
    for (int i = 0; i < n_generated; i++) {
        printf(i ? ", %d" : "%d", picks[i]);
    }
    printf("], \"margins\": [");
    for (int i = 0; i < n_generated; i++) {
        printf(i ? ", %.5f" : "%.5f", margins[i]);
    }
    printf("], \"text\": ");
    print_json_string(text, text_length);
    printf(", \"load_seconds\": %.3f, \"prompt_seconds\": %.3f, \"generate_seconds\": %.3f}\n", loaded - started,
           prompted - loaded, generated - prompted);

    free(margins);
    free(picks);
    free(forced);
    free(text);
    free(tokens);
    llama_free(context);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
