/*
 * test_chat.c: template detection from real templates' markers and the
 * exact rendering of each family for a system + user + assistant + user
 * conversation (the strings llama.cpp's llm_chat_apply_template produces).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "dify-edge-core/server/chat.h"

struct detect_case {
	const char *tmpl;
	bool im_start;
	enum chat_family want;
};

static const struct detect_case detect_cases[] = {
	{ .tmpl = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}", .want = CHAT_CHATML },
	{ .tmpl = "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}", .want = CHAT_LLAMA3 },
	{ .tmpl = "{% if messages[0]['role'] == 'system' %}{% set system_message = '<<SYS>>\\n' + messages[0]['content'] + '\\n<</SYS>>\\n\\n' %}{% endif %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}", .want = CHAT_LLAMA2 },
	{ .tmpl = "{{ bos_token }}{% for message in messages %}{{ '[INST] ' + message['content'] + ' [/INST]' }}{% endfor %}", .want = CHAT_LLAMA2 },
	{ .tmpl = "{{ bos_token }}{% for message in messages %}{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}", .want = CHAT_GEMMA },
	{ .tmpl = "{% for message in messages %}{{'<|' + message['role'] + '|>' + '\\n' + message['content'] + '<|end|>\\n'}}{% endfor %}<|user|>", .want = CHAT_PHI3 },
	{ .tmpl = "{{ something unknown }}", .want = CHAT_PLAIN },
	{ .tmpl = "{{ something unknown }}", .im_start = true, .want = CHAT_CHATML },
	{ .tmpl = NULL, .want = CHAT_PLAIN },
	{ .tmpl = NULL, .im_start = true, .want = CHAT_CHATML },
};

static void test_detect(void **state)
{
	for (size_t i = 0; i < sizeof(detect_cases) / sizeof(detect_cases[0]); i++) {
		const struct detect_case *c = &detect_cases[i];
		enum chat_family f = chat_detect(c->tmpl, c->tmpl ? strlen(c->tmpl) : 0, c->im_start);
		if (f != c->want)
			print_message("case %zu: got %s want %s\n", i, chat_family_name(f), chat_family_name(c->want));
		assert_int_equal(f, c->want);
	}
}

static const struct chat_msg conv[] = {
	{ .role = "system", .content = "You are a helpful assistant" },
	{ .role = "user", .content = "Hello" },
	{ .role = "assistant", .content = "Hi there" },
	{ .role = "user", .content = "Who are you" },
};

struct render_case {
	enum chat_family f;
	const char *want;
};

static const struct render_case render_cases[] = {
	{ .f = CHAT_CHATML, .want = "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nWho are you<|im_end|>\n<|im_start|>assistant\n" },
	{ .f = CHAT_LLAMA3, .want = "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n" },
	{ .f = CHAT_LLAMA2, .want = "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST] Hi there </s><s>[INST] Who are you [/INST]" },
	{ .f = CHAT_GEMMA, .want = "<start_of_turn>user\nYou are a helpful assistant\n\nHello<end_of_turn>\n<start_of_turn>model\nHi there<end_of_turn>\n<start_of_turn>user\nWho are you<end_of_turn>\n<start_of_turn>model\n" },
	{ .f = CHAT_PHI3, .want = "<|system|>\nYou are a helpful assistant<|end|>\n<|user|>\nHello<|end|>\n<|assistant|>\nHi there<|end|>\n<|user|>\nWho are you<|end|>\n<|assistant|>\n" },
	{ .f = CHAT_PLAIN, .want = "System: You are a helpful assistant\nUser: Hello\nAssistant: Hi there\nUser: Who are you\nAssistant:" },
};

static void test_render(void **state)
{
	for (size_t i = 0; i < sizeof(render_cases) / sizeof(render_cases[0]); i++) {
		char *s = chat_render(render_cases[i].f, conv, 4);
		assert_non_null(s);
		if (strcmp(s, render_cases[i].want))
			print_message("%s:\n[%s]\n", chat_family_name(render_cases[i].f), s);
		assert_string_equal(s, render_cases[i].want);
		free(s);
	}
	assert_string_equal(chat_stop(CHAT_PLAIN), "\nUser:");
	assert_null(chat_stop(CHAT_CHATML));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_detect),
		cmocka_unit_test(test_render),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
