"""Parallel example sentences for few-shot prompts: the same sentences in several languages.

A base model learns the task from these pairs, so they show what llamadesk wants: a short UI
label stays short, a sentence becomes one sentence, and ⟦n⟧ markers (protected spans) are
carried over unchanged, moved where the target language's word order puts them. Written for
llamadesk; a language without a row gets a zero-shot prompt.
"""

from __future__ import annotations

EXAMPLE_SENTENCES: dict[str, tuple[str, ...]] = {
    "en": (
        "Save changes",
        "The weather is nice today, so we are going to the park.",
        "You have ⟦1⟧ new messages from ⟦2⟧.",
        "Read the ⟦1⟧user guide⟦2⟧ before you start.",
    ),
    "fr": (
        "Enregistrer les modifications",
        "Il fait beau aujourd'hui, alors nous allons au parc.",
        "Vous avez ⟦1⟧ nouveaux messages de ⟦2⟧.",
        "Lisez le ⟦1⟧guide de l'utilisateur⟦2⟧ avant de commencer.",
    ),
    "de": (
        "Änderungen speichern",
        "Das Wetter ist heute schön, also gehen wir in den Park.",
        "Sie haben ⟦1⟧ neue Nachrichten von ⟦2⟧.",
        "Lesen Sie das ⟦1⟧Benutzerhandbuch⟦2⟧, bevor Sie beginnen.",
    ),
    "es": (
        "Guardar cambios",
        "Hoy hace buen tiempo, así que vamos al parque.",
        "Tienes ⟦1⟧ mensajes nuevos de ⟦2⟧.",
        "Lee la ⟦1⟧guía del usuario⟦2⟧ antes de empezar.",
    ),
    "it": (
        "Salva le modifiche",
        "Oggi il tempo è bello, quindi andiamo al parco.",
        "Hai ⟦1⟧ nuovi messaggi da ⟦2⟧.",
        "Leggi la ⟦1⟧guida utente⟦2⟧ prima di iniziare.",
    ),
    "pt": (
        "Salvar alterações",
        "O tempo está bom hoje, então vamos ao parque.",
        "Você tem ⟦1⟧ novas mensagens de ⟦2⟧.",
        "Leia o ⟦1⟧guia do usuário⟦2⟧ antes de começar.",
    ),
    "nl": (
        "Wijzigingen opslaan",
        "Het weer is mooi vandaag, dus we gaan naar het park.",
        "Je hebt ⟦1⟧ nieuwe berichten van ⟦2⟧.",
        "Lees de ⟦1⟧gebruikershandleiding⟦2⟧ voordat je begint.",
    ),
    "pl": (
        "Zapisz zmiany",
        "Dziś jest ładna pogoda, więc idziemy do parku.",
        "Masz ⟦1⟧ nowych wiadomości od ⟦2⟧.",
        "Przeczytaj ⟦1⟧instrukcję obsługi⟦2⟧, zanim zaczniesz.",
    ),
    "ru": (
        "Сохранить изменения",
        "Сегодня хорошая погода, поэтому мы идём в парк.",
        "У вас ⟦1⟧ новых сообщений от ⟦2⟧.",
        "Прочитайте ⟦1⟧руководство пользователя⟦2⟧, прежде чем начать.",
    ),
    "zh": (
        "保存更改",
        "今天天气很好，所以我们去公园。",
        "您有来自⟦2⟧的⟦1⟧条新消息。",
        "开始之前，请阅读⟦1⟧用户指南⟦2⟧。",
    ),
    "ja": (
        "変更を保存",
        "今日は天気がいいので、公園に行きます。",
        "⟦2⟧から⟦1⟧件の新しいメッセージがあります。",
        "始める前に⟦1⟧ユーザーガイド⟦2⟧をお読みください。",
    ),
}


def example_pairs(source: str, target: str) -> list[tuple[str, str]]:
    """(source sentence, target sentence) pairs for two language codes; empty if either is missing."""
    if source not in EXAMPLE_SENTENCES or target not in EXAMPLE_SENTENCES:
        return []
    return list(zip(EXAMPLE_SENTENCES[source], EXAMPLE_SENTENCES[target], strict=False))
