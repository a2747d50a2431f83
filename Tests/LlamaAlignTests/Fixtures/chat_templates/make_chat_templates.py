"""Writes chat_templates.json: four common chat templates (the Jinja sources models ship in
tokenizer_config.json: Llama-2-chat, ChatML, Zephyr, Llama-3-Instruct) rendered by transformers'
apply_chat_template on a few conversations, with and without the generation prompt.
Run once with transformers installed: python make_chat_templates.py"""
import json
import transformers
from transformers.utils.chat_template_utils import render_jinja_template

TEMPLATES = {
    "llama2": "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% endfor %}",
    "chatml": "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
    "zephyr": "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}",
    "llama3": "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}",
}
SPECIAL = {"llama2": ("<s>", "</s>"), "chatml": ("<s>", "</s>"), "zephyr": ("<s>", "</s>"), "llama3": ("<|begin_of_text|>", "<|end_of_text|>")}
CONVERSATIONS = [
    [{"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "It is 4."}],
    [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": " Hi there "},
     {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Name a color.\nOne word."},
     {"role": "assistant", "content": " Blue. "}],
    [{"role": "user", "content": "Only a question"}],
]

cases = []
for name, source in TEMPLATES.items():
    bos, eos = SPECIAL[name]
    for conv in CONVERSATIONS:
        if name == "llama2" and conv[-1]["role"] == "user":
            pass
        for gen in (False, True):
            rendered, _ = render_jinja_template(conversations=[conv], chat_template=source, add_generation_prompt=gen,
                                                bos_token=bos, eos_token=eos)
            cases.append({"template": name, "messages": conv, "add_generation_prompt": gen, "text": rendered[0]})
json.dump({"transformers": transformers.__version__, "templates": TEMPLATES, "special_tokens": SPECIAL, "cases": cases},
          open("chat_templates.json", "w"), indent=1, ensure_ascii=False)
print(len(cases), "cases")
