"""nerwheel.kb"""
