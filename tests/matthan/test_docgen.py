from matthan import docgen


def test_generated_reference_pages_are_current() -> None:
    # Changing the wire contract or the config model means regenerating the docs in the same change.
    assert docgen.main(["--check"]) == 0, "run: python -m matthan.docgen"


def test_every_topic_kind_is_documented() -> None:
    page = docgen.mqtt_reference()
    for kind in docgen.Kind:
        assert f"/{kind.value}`" in page or f"/{kind.value}/" in page
